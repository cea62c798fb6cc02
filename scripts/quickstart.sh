#!/usr/bin/env bash
# The main job on the embedded default, from a fresh Debian machine: install and
# build (scripts/setup.sh), prepare the SOTU shards (data/prepare_sotu.sh), then
# run configs/default.yaml on the CPU. Extra arguments go to train_gpt
# (e.g. --set run.out_dir=out/mine).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
bash data/prepare_sotu.sh
# --resume: running this again continues an interrupted run (or finds it done).
build/train_gpt --config configs/default.yaml --resume "$@"
