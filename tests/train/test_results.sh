#!/usr/bin/env bash
# scripts/results.py over runs made by hand: the settings that differ become
# columns; final, best and timing values are those of loss.csv (medians and
# quartiles after the warmup steps, by their definition); an unfinished run is
# marked; the Dion2 paper's final losses stand beside runs of its configs.
#   bash tests/train/test_results.sh ROOT BUILD
set -euo pipefail
root=$(cd "$1" && pwd) build=$(cd "$2" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
header="step,tokens,lr,train_loss,val_loss,grad_norm,step_ms,opt_ms,tokens_per_s,comm_bytes"
# RUN CONFIG [--set ...]: the run's config.yaml as train_gpt resolves it, and 40 steps
# with step_ms = step + 1, opt_ms = 2 (step + 1), val loss every 10 steps falling to 3 + OFFSET.
make_run() {
  local run=$1 config=$2 offset=$3
  shift 3
  mkdir -p "$dir/$run"
  "$build/train_gpt" --print-config --config "$root/configs/$config" "$@" | grep -v '^#' | sed 's/  # .*$//' \
    > "$dir/$run/config.yaml"
  { echo "$header"
    for s in $(seq 0 39); do
      v=""; [ $((s % 10)) -eq 9 ] && v=$(awk "BEGIN { print 3 + $offset + (39 - $s) / 10 }")
      echo "$s,$(((s + 1) * 1000)),0.02,4.5,$v,1.0,$((s + 1)).0,$((2 * s + 2)).0,100.0,$((1000 * s))"
    done; } > "$dir/$run/loss.csv"
}
make_run l1_half paper_300m_dion2.yaml 0 --set optim.alpha=0.5
make_run random_half paper_300m_dion2.yaml 0.01 --set optim.alpha=0.5 --set optim.select=random
make_run muon_1b paper_1b_muon.yaml 0.02
make_run small sotu_dion2.yaml 0.03
printf 'steps: 40\nwall_seconds: 95.5\n' > "$dir/l1_half/done.yaml"
for run in random_half muon_1b small; do printf 'steps: 40\nwall_seconds: 200\n' > "$dir/$run/done.yaml"; done
rm "$dir/small/done.yaml"  # unfinished
/usr/bin/python3 "$root/scripts/results.py" "$dir" -o "$dir/all" > "$dir/log" || fail "results.py failed: $(cat "$dir/log")"
md=$dir/all.md
row() { grep "^| $1" "$md" || fail "no row for $1: $(cat "$md")"; }
head -1 "$md" | grep -q "| optim.alpha | optim.matrix | optim.select |" || fail "settings columns: $(head -1 "$md")"
head -1 "$md" | grep -q "| model.d_model |" || fail "model.d_model differs and is no column: $(head -1 "$md")"
head -1 "$md" | grep -q "data.vocab_dir\|run.out_dir" && fail "output-only keys became columns: $(head -1 "$md")"
row "l1_half |" | grep -q "| 40 | 40,000 | 4.5000 | 3.0000 | 3.0000 (39) | 2.9154 (300M Fig. 2) | 95.5 s | 25.5 (18.2-32.8) | 51.00 (36.50-65.50) | 0.02 MiB |" ||
  fail "l1_half: $(row "l1_half |")"
row "random_half |" | grep -q "| 3.0100 | 3.0100 (39) | 2.9148 (300M Fig. 2) | 3.3 min |" || fail "random_half: $(row "random_half |")"
row "muon_1b |" | grep -q "| 2.6230 (1B Fig. 1) |" || fail "muon_1b: $(row "muon_1b |")"
row "small (unfinished) |" | grep -q "| - |" || fail "small: $(row "small (unfinished) |")"
/usr/bin/python3 - "$dir/all.csv" <<'PY' || fail "the CSV: $(cat "$dir/all.csv")"
import csv, sys
rows = {r["run"]: r for r in csv.DictReader(open(sys.argv[1]))}
r = rows["l1_half"]
assert (r["step_ms_median"], r["step_ms_p25"], r["step_ms_p75"]) == ("25.5", "18.25", "32.75"), r
assert (r["best_val_loss"], r["best_val_step"], r["finished"], r["paper_val_loss"]) == ("3", "39", "yes", "2.9154"), r
assert rows["small"]["finished"] == "no" and rows["small"]["paper_val_loss"] == "", rows["small"]
assert float(rows["random_half"]["wall_s"]) == 200.0
PY
if /usr/bin/python3 "$root/scripts/results.py" "$dir/nothing" 2> "$dir/err"; then fail "a missing folder was accepted"; fi
grep -q "'$dir/nothing' is not a folder" "$dir/err" || fail "unclear error: $(cat "$dir/err")"
echo "results.py: settings columns, medians and quartiles, best val, unfinished runs, the paper's values"
