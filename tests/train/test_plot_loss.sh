#!/usr/bin/env bash
# scripts/plot_loss.py draws a PNG from loss CSVs, val gaps included, and
# rejects an empty CSV with a message.
set -euo pipefail
root=$1
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || { echo "SKIP: matplotlib is not installed"; exit 0; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/a" "$dir/b"
header="step,tokens,lr,train_loss,val_loss,grad_norm,step_ms,opt_ms,tokens_per_s,comm_bytes"
{ echo "$header"; for s in 0 1 2 3 4 5; do v=""; [ $((s % 3)) -eq 2 ] && v="$((9 - s)).5"; echo "$s,$(((s + 1) * 256)),0.001,$((10 - s)).25,$v,1.0,10.0,2.0,25600.0,0"; done; } > "$dir/a/loss.csv"
cp "$dir/a/loss.csv" "$dir/b/loss.csv"
/usr/bin/python3 "$root/scripts/plot_loss.py" "$dir/a/loss.csv" "$dir/b/loss.csv" -o "$dir/out.png" --smooth 2
[ "$(head -c 8 "$dir/out.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || { echo "FAIL: not a PNG"; exit 1; }
[ "$(stat -c %s "$dir/out.png")" -gt 10000 ] || { echo "FAIL: PNG too small"; exit 1; }
echo "$header" > "$dir/empty.csv"
if /usr/bin/python3 "$root/scripts/plot_loss.py" "$dir/empty.csv" -o "$dir/x.png" 2> "$dir/err"; then
  echo "FAIL: an empty CSV was accepted"; exit 1
fi
grep -q "has no rows" "$dir/err" || { echo "FAIL: unclear error: $(cat "$dir/err")"; exit 1; }
echo "plot_loss.py: PNG written, empty CSV refused"
