#!/usr/bin/env bash
# scripts/micro_benchmark.sh in CI size (2 ranks, d_model 64, 21 steps): one
# CSV row per optimizer with its step time and bytes, a PNG; Dion2 sends less
# than Muon, and compressed sync less again.
source "$(dirname "${BASH_SOURCE[0]}")/../sotu_script_test.sh" "$1"
bash scripts/micro_benchmark.sh "$out" --ranks 2 --widths 64 --steps 21 > "$out/log"
csv="$out/micro_benchmark.csv"
[ "$(wc -l < "$csv")" -eq 8 ] || { echo "FAIL: expected 7 rows: $(cat "$csv")"; exit 1; }
[ -s "$out/micro_benchmark.png" ] || { echo "FAIL: no PNG"; exit 1; }
bytes() { grep "^$1,64," "$csv" | cut -d, -f5; }
[ "$(bytes dion2_alpha0.25)" -lt "$(bytes muon)" ] || { echo "FAIL: Dion2 did not send less than Muon: $(cat "$csv")"; exit 1; }
[ "$(bytes dion2_alpha0.25_selected_sync)" -lt "$(bytes dion2_alpha0.25)" ] || { echo "FAIL: compressed sync did not send less"; exit 1; }
echo "micro_benchmark: 7 optimizers, CSV and PNG; Dion2 < Muon, compressed sync < Dion2 in bytes"
