#!/usr/bin/env bash
# The whole test suite from a fresh Debian machine: install and build (with
# Debian's numpy, matplotlib and torch for the reference checks), fetch the
# corpus, vocabulary and reference encoders (npm), then run every ctest label
# (unit; mpi and gpu as those suites arrive, gpu skipping without a GPU).
# Extra arguments go to ctest (e.g. -L unit, -R Tokenizer).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
LLMDION_TEST_DEPS=1 bash scripts/setup.sh
bash data/prepare_sotu.sh
bash data/npm_fetch.sh tiktoken@1.0.22
cd build
ctest --output-on-failure -j "$(nproc)" "$@"
