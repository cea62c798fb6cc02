#!/usr/bin/env bash
# data/prepare_fineweb.py on local JSON lines (no network): its shards must be
# byte-identical to build/tokenize's on the same documents given as text files.
set -euo pipefail
root=$1
build=$2
[ -f "$root/data/gpt2/encoder.json" ] || { echo "SKIP: no GPT-2 vocabulary; run data/prepare_sotu.sh"; exit 0; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

/usr/bin/python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
docs = [f"Document {i}: caf\u00e9 \u65e5\u672c \U0001F600 \"quoted\"\n" + "more text, " * (i % 9) for i in range(60)]
with open(f"{d}/docs.jsonl", "w", encoding="utf-8") as f:
    for i, text in enumerate(docs):
        f.write(json.dumps({"id": i, "text": text, "url": "https://example.com"}) + "\n")
for i, text in enumerate(docs):
    with open(f"{d}/doc{i + 100}.txt", "w", encoding="utf-8") as f:
        f.write(text)
PY
/usr/bin/python3 "$root/data/prepare_fineweb.py" --jsonl "$dir/docs.jsonl" --out "$dir/py" --shard-tokens 400 --threads 2
"$build/tokenize" --vocab-dir "$root/data/gpt2" --out "$dir/direct/fineweb" --shard-tokens 400 "$dir"/doc*.txt
count=0
for f in "$dir"/direct/*.bin; do
  cmp "$f" "$dir/py/$(basename "$f")"
  count=$((count + 1))
done
[ "$count" -ge 3 ] || { echo "FAIL: expected several shards, got $count"; exit 1; }
[ "$(ls "$dir/py" | wc -l)" -eq "$count" ] || { echo "FAIL: shard counts differ"; exit 1; }
echo "prepare_fineweb.py --jsonl: $count shards identical to build/tokenize's"
