#!/usr/bin/env bash
# The error-feedback ablation (the Dion2 paper's section 4.2, Figure 4): Dion2
# with the selective decay M[K] *= mu against the full decay M *= mu, at alpha
# 0.25 and 0.125.
#   scripts/sweep_decay.sh configs/sotu_dion2.yaml out/sweep_decay [--set key=value ...]
source "$(dirname "${BASH_SOURCE[0]}")/sweep_lib.sh"
sweep_begin sweep_decay "$@"
for alpha in 0.25 0.125; do
  for decay in selective full; do
    run_variant "dion2_${decay}_alpha$alpha" optim.matrix=dion2 optim.decay=$decay optim.alpha=$alpha
  done
done
sweep_end "Dion2: selective vs full momentum decay"
