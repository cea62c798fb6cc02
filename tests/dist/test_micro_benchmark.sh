#!/usr/bin/env bash
# scripts/micro_benchmark.sh in CI size (1 and 2 ranks, d_model 64, 21 steps):
# one CSV row per optimizer and rank count with its times and bytes, a PNG and
# the printed table; alone nothing is sent; on 2 ranks Dion2 sends less than
# Muon, and compressed sync less again.
source "$(dirname "${BASH_SOURCE[0]}")/../sotu_script_test.sh" "$1"
bash scripts/micro_benchmark.sh "$out" --ranks "1 2" --widths 64 --steps 21 > "$out/log"
csv="$out/micro_benchmark.csv"
[ "$(wc -l < "$csv")" -eq 15 ] || { echo "FAIL: expected 14 rows: $(cat "$csv")"; exit 1; }
[ -s "$out/micro_benchmark.png" ] || { echo "FAIL: no PNG"; exit 1; }
# The printed table is the saved one: a header, a rule and a row per CSV row.
grep -q '^| ranks | d_model | optimizer | step ms' "$out/log" || { echo "FAIL: no table printed: $(cat "$out/log")"; exit 1; }
[ "$(grep -c '^| [12] | 64 |' "$out/micro_benchmark.md")" -eq 14 ] || { echo "FAIL: table rows: $(cat "$out/micro_benchmark.md")"; exit 1; }
bytes() { grep "^$1,64,$2," "$csv" | cut -d, -f5; }
step_ms() { grep "^$1,64,$2," "$csv" | cut -d, -f6; }
[ "$(bytes muon 1)" -eq 0 ] || { echo "FAIL: one rank sent bytes: $(cat "$csv")"; exit 1; }
awk -v ms="$(step_ms muon 2)" 'BEGIN { exit !(ms > 0) }' || { echo "FAIL: no step time: $(cat "$csv")"; exit 1; }
[ "$(bytes dion2_alpha0.25 2)" -lt "$(bytes muon 2)" ] || { echo "FAIL: Dion2 did not send less than Muon: $(cat "$csv")"; exit 1; }
[ "$(bytes dion2_alpha0.25_selected_sync 2)" -lt "$(bytes dion2_alpha0.25 2)" ] || { echo "FAIL: compressed sync did not send less"; exit 1; }
echo "micro_benchmark: 7 optimizers on 1 and 2 ranks, CSV, table and PNG; nothing sent alone; Dion2 < Muon, compressed sync < Dion2 in bytes"
