#!/usr/bin/env bash
# bench/paper_claims.py over runs made by hand: each optimizer's mean and sample
# sd over seeds, the per-seed values, and the paired differences with their 95%
# t interval, recomputed here from the definitions (Python's statistics module,
# the t table); unfinished runs are listed and left out; the lr sweep's choice.
#   bash tests/train/test_paper_claims.sh ROOT
set -euo pipefail
root=$(cd "$1" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# RUN FINAL: 20 steps, val loss every 5 steps falling by 0.1 an evaluation to FINAL.
make_run() {
  mkdir -p "$dir/$1"
  { echo "step,tokens,lr,train_loss,val_loss,grad_norm,step_ms,opt_ms,tokens_per_s,comm_bytes"
    for s in $(seq 0 19); do
      v=""; [ $((s % 5)) -eq 4 ] && v=$(awk "BEGIN { print $2 + (19 - $s) / 50 }")
      echo "$s,$(((s + 1) * 100)),0.02,7.0,$v,1.0,10.0,1.0,100.0,0"
    done; } > "$dir/$1/loss.csv"
  echo "steps: 20" > "$dir/$1/done.yaml"
}
make_run adamw_seed1 6.10; make_run adamw_seed2 6.20; make_run adamw_seed3 6.15
make_run muon_seed1 5.80; make_run muon_seed2 5.95; make_run muon_seed3 5.83
make_run dion2_l1_alpha0.25_seed1 5.90; make_run dion2_l1_alpha0.25_seed2 5.97; make_run dion2_l1_alpha0.25_seed3 5.0
rm "$dir/dion2_l1_alpha0.25_seed3/done.yaml"  # unfinished: left out
make_run dion2_l1_alpha0.25_full_decay_seed1 5.91; make_run dion2_l1_alpha0.25_full_decay_seed2 5.95
# The selection statistics of bench/dion2_decay_probe (two rows) in one run.
{ echo "step,never_selected,idle_mean,idle_max,gap_mean,gap_p90,gap_max,full_decay_keeps,momentum_rms,slice_norm_max_median"
  echo "9,0.5,4.0,10,2.0,3,10,0.9,0.01,3.0"
  echo "19,0.25,6.5,20,3.0,5,12,0.8,0.02,4.0"; } > "$dir/dion2_l1_alpha0.25_seed2/selection_probe.csv"
# An interrupted probe: its rows stop at step 9, the last one cut short.
{ echo "step,never_selected,idle_mean,idle_max,gap_mean,gap_p90,gap_max,full_decay_keeps,momentum_rms,slice_norm_max_median"
  echo "9,0.125,2.0,9,1.5,2,9,0.95,0.03,2.0"
  echo "14,0.1,3.0"; } > "$dir/muon_seed1/selection_probe.csv"
/usr/bin/python3 "$root/bench/paper_claims.py" "$dir" -o "$dir/claims" > "$dir/log" 2>&1 ||
  fail "paper_claims.py failed: $(cat "$dir/log")"
[ -s "$dir/claims.png" ] && [ -s "$dir/claims_probe.png" ] || fail "no figures"
# The last row's values, the mean gap and kept share over the rows, the largest gap.
grep -q "^| dion2_l1_alpha0.25_seed2 | 5.9700 | 20 | 0.250 | 6.5 | 20 | 2.50 | 12 | 0.850 | 0.0200 | 4.0 |$" \
  "$dir/claims.md" || fail "probe row: $(grep "seed2 |" "$dir/claims.md")"
grep -q "^| muon_seed1 | 5.8000 | 10 | 0.125 | 2.0 | 9 | 1.50 | 9 | 0.950 | 0.0300 | 2.0 |$" "$dir/claims.md" ||
  fail "interrupted probe row: $(grep "muon_seed1 |" "$dir/claims.md")"
/usr/bin/python3 - "$dir/claims.md" <<'EOF' || exit 1
import math, statistics, sys
md = open(sys.argv[1]).read()
def fail(what):
    print("FAIL:", what, "\n" + md)
    sys.exit(1)
finals = {"adamw": [6.10, 6.20, 6.15], "muon": [5.80, 5.95, 5.83], "dion2_l1_alpha0.25": [5.90, 5.97],
          "dion2_l1_alpha0.25_full_decay": [5.91, 5.95]}
for name, values in finals.items():
    cells = " | ".join(f"{v:.4f}" for v in values) + (" | -" if len(values) == 2 else "")
    row = f"| {name} | {len(values)} | {statistics.mean(values):.4f} ± {statistics.stdev(values):.4f} | {cells} |"
    if row not in md:
        fail(f"no row '{row}'")
pooled = math.sqrt(statistics.mean([statistics.stdev(v) ** 2 for v in finals.values()]))
if f"optimizers with two or more seeds): {pooled:.4f}." not in md:
    fail(f"pooled sd {pooled:.4f}")
t_975 = {1: 12.706, 2: 4.303}  # Student's t table
def paired(a, b, claim, resolved):
    diffs = [x - y for x, y in zip(finals[a], finals[b])]
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    half = t_975[len(diffs) - 1] * sd / math.sqrt(len(diffs))
    row = (f"| {claim} | {a} - {b} | " + ", ".join(f"{d:+.4f}" for d in diffs) + f" | {mean:+.4f} ± {sd:.4f} | "
           f"[{mean - half:+.4f}, {mean + half:+.4f}] | {resolved} |")
    if row not in md:
        fail(f"no row '{row}'")
paired("muon", "adamw", "1. Muon beats AdamW", "yes: a lower")
paired("dion2_l1_alpha0.25_full_decay", "dion2_l1_alpha0.25", "4. selective decay essential",
       "no: the interval holds 0")
if "Unfinished, left out: dion2_l1_alpha0.25_seed3." not in md:
    fail("the unfinished run is not listed")
if "Steps per run: 20." not in md:
    fail("steps")
EOF
# The lr choice: each optimizer's lowest final val loss, and where it lies in its grid.
printf 'run,optim.lr,val_loss\na_lr0.01,0.01,5.0\na_lr0.02,0.02,4.9\na_lr0.04,0.04,5.1\nb_lr2e-3,2e-3,3.1\n%s\n' \
  'b_lr1e-3,1e-3,3.0' > "$dir/lr.csv"
printf 'c_lr0.1,0.1,2.0\nc_lr0.2,0.2,1.5\nc_lr0.3,0.3,\n' >> "$dir/lr.csv"  # c_lr0.3: unfinished
/usr/bin/python3 "$root/bench/paper_claims.py" --choose-lr "$dir/lr.csv" > "$dir/chosen" 2>&1 ||
  fail "--choose-lr failed: $(cat "$dir/chosen")"
[ "$(cat "$dir/chosen")" = "$(printf 'a 0.02 4.9 inside\nb 1e-3 3.0 lower\nc 0.2 1.5 upper')" ] ||
  fail "lr choice: $(cat "$dir/chosen")"
[ -s "$dir/lr_choice.png" ] || fail "no lr figure"
mkdir "$dir/empty"
if /usr/bin/python3 "$root/bench/paper_claims.py" "$dir/empty" > "$dir/log" 2>&1; then fail "no runs accepted"; fi
grep -q "no finished run" "$dir/log" || fail "no runs: $(cat "$dir/log")"
echo "paper_claims.py: means, sds, paired intervals, unfinished runs and the lr choice as defined"
