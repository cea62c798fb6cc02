#!/usr/bin/env bash
# Dion2's selection rule (the Dion2 paper's Figure 2, right): l1 and random
# selection at alpha 0.5, 0.25, 0.125.
#   scripts/sweep_selection.sh configs/sotu_dion2.yaml out/sweep_selection [--set key=value ...]
source "$(dirname "${BASH_SOURCE[0]}")/sweep_lib.sh"
sweep_begin sweep_selection "$@"
for alpha in 0.5 0.25 0.125; do
  for select in l1 random; do
    run_variant "dion2_${select}_alpha$alpha" optim.matrix=dion2 optim.select=$select optim.alpha=$alpha
  done
done
sweep_end "Dion2: l1 vs random selection"
