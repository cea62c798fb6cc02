#!/usr/bin/env bash
# Dion2's fraction alpha against Muon (the Dion2 paper's Figure 2, left): Muon,
# then Dion2 with l1 selection at alpha 0.5, 0.25, 0.125.
#   scripts/sweep_alpha.sh configs/sotu_dion2.yaml out/sweep_alpha [--set key=value ...]
source "$(dirname "${BASH_SOURCE[0]}")/sweep_lib.sh"
sweep_begin sweep_alpha "$@"
run_variant muon optim.matrix=muon
for alpha in 0.5 0.25 0.125; do
  run_variant "dion2_l1_alpha$alpha" optim.matrix=dion2 optim.select=l1 optim.alpha=$alpha
done
sweep_end "Dion2: fraction alpha (l1 selection) vs Muon"
