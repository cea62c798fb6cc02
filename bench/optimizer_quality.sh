#!/usr/bin/env bash
# Update quality on the SOTU corpus: the same small GPT-2, data order, seed and
# 600-step budget (configs/sotu_dion2.yaml) for AdamW, Muon, Dion (rank 1/4),
# Dion2 at alpha 0.5/0.25/0.125 with l1 and random selection, and Dion2 with
# the full momentum decay. Writes OUT_DIR/optimizer_quality.{png,md}; complete
# runs are skipped, interrupted ones resumed.
#   bash bench/optimizer_quality.sh [OUT_DIR] [--set key=value ...]
out=${1:-out/optimizer_quality}
shift || true
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/sweep_lib.sh"
sweep_begin optimizer_quality "$sweep_root/configs/sotu_dion2.yaml" "$out" "$@"
run_variant adamw optim.matrix=adamw optim.lr=2e-3 optim.weight_decay=0.1
run_variant muon optim.matrix=muon
run_variant dion_rank0.25 optim.matrix=dion optim.rank_frac=0.25
for alpha in 0.5 0.25 0.125; do
  for select in l1 random; do
    run_variant "dion2_${select}_alpha$alpha" optim.matrix=dion2 optim.select=$select optim.alpha=$alpha
  done
done
run_variant dion2_l1_alpha0.25_full_decay optim.matrix=dion2 optim.alpha=0.25 optim.decay=full
sweep_end "SOTU, 600 steps: AdamW, Muon, Dion, Dion2 (seed 1337)"
