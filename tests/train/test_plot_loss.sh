#!/usr/bin/env bash
# scripts/plot_loss.py draws a PNG from loss CSVs (val gaps, a zoom panel, a
# log scale), beside its input unless told; pairs runs that differ in one
# setting (same colour, a line style per value); rejects an empty CSV.
set -euo pipefail
root=$1
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || { echo "SKIP: matplotlib is not installed"; exit 0; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] && [ "$(stat -c %s "$1")" -gt 10000 ]; }
header="step,tokens,lr,train_loss,val_loss,grad_norm,step_ms,opt_ms,tokens_per_s,comm_bytes"
for run in l1_a l1_b l1_c random_a random_b random_c; do
  mkdir -p "$dir/$run"
  { echo "$header"; for s in $(seq 0 39); do v=""; [ $((s % 10)) -eq 9 ] && v="$((9 - s / 10)).5"; echo "$s,$(((s + 1) * 256)),0.001,$((50 - s)).25,$v,1.0,10.0,2.0,25600.0,0"; done; } > "$dir/$run/loss.csv"
  select=${run%_*} alpha=${run#*_}
  alpha=${alpha/a/0.5} alpha=${alpha/b/0.25} alpha=${alpha/c/0.125}
  printf 'optim:\n  select: "%s"\n  alpha: %s\nrun:\n  out_dir: "%s"\n' "$select" "$alpha" "$dir/$run" > "$dir/$run/config.yaml"
done
py=/usr/bin/python3
$py "$root/scripts/plot_loss.py" "$dir/l1_a/loss.csv" --smooth 2 --log-y > "$dir/log"
is_png "$dir/l1_a/loss.png" || fail "one CSV: no PNG beside it: $(cat "$dir/log")"
$py "$root/scripts/plot_loss.py" "$dir"/*/loss.csv --val-only --zoom 0.25 --title "select" > "$dir/log"
is_png "$dir/loss_l1_a_l1_b_l1_c_random_a_random_b_random_c.png" || fail "several CSVs: no PNG in their folder: $(cat "$dir/log")"
$py "$root/scripts/plot_loss.py" "$dir"/*/loss.csv --zoom 0.05 -o "$dir/x.png" > "$dir/log"  # 2 steps: train loss
is_png "$dir/x.png" || fail "a narrow zoom drew no PNG"
# The pairing: runs differing only in optim.select share a colour; the line style follows select.
styles=$(cd "$root/scripts" && $py -c "
import sys; sys.argv = ['x']
from plot_loss import read_config, styles
paths = ['$dir/%s/loss.csv' % r for r in ['l1_a', 'l1_b', 'l1_c', 'random_a', 'random_b', 'random_c']]
print(styles([read_config(p) for p in paths]))")
[ "$styles" = "([(0, '-'), (1, '-'), (2, '-'), (0, '--'), (1, '--'), (2, '--')], 'optim.select')" ] || fail "pairing: $styles"
echo "$header" > "$dir/empty.csv"
if $py "$root/scripts/plot_loss.py" "$dir/empty.csv" -o "$dir/y.png" 2> "$dir/err"; then fail "an empty CSV was accepted"; fi
grep -q "has no rows" "$dir/err" || fail "unclear error: $(cat "$dir/err")"
echo "plot_loss.py: PNGs beside their input, zoom and log scale, l1/random paired by colour, empty CSV refused"
