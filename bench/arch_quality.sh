#!/usr/bin/env bash
# The three block presets on the SOTU corpus at (nearly) equal parameters and
# equal steps: gpt2, llama and paper (model.arch), each with Muon and with
# Dion2 alpha 0.25, on configs/sotu_dion2.yaml's model and 600-step budget.
# Embeddings are tied for all three (the presets untie llama's and paper's),
# and llama's SwiGLU width is 344 so its three MLP matrices hold about the
# 8 d^2 values of the others' two. Writes OUT_DIR/arch_quality.{png,md}.
#   bash bench/arch_quality.sh [OUT_DIR] [--set key=value ...]
out=${1:-out/arch_quality}
shift || true
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/sweep_lib.sh"
sweep_begin arch_quality "$sweep_root/configs/sotu_dion2.yaml" "$out" "$@"
for arch in gpt2 llama paper; do
  model=(model.arch=$arch model.tied_embeddings=true)
  [ $arch = llama ] && model+=(model.ffn_hidden=344)
  run_variant "${arch}_muon" "${model[@]}" optim.matrix=muon
  run_variant "${arch}_dion2_alpha0.25" "${model[@]}" optim.matrix=dion2 optim.alpha=0.25
done
sweep_end "SOTU, 600 steps: gpt2, llama and paper blocks with Muon and Dion2 (seed 1337)"
