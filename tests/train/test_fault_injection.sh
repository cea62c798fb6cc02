#!/usr/bin/env bash
# Faults a run must come through, injected as a hostile user would (under a
# minute on 2 cores), on a tiny Dion2 model over synthetic shards, checkpoints
# every step; each ends in loss.csv equal to an uninterrupted run's (timing
# columns aside) or in the expected error:
#   1. kill -9 at random moments (mid-step, mid-checkpoint), resumed until done;
#   2. one flipped byte in each file of the newest checkpoint: named on resume,
#      set aside, the run goes on from the one before;
#   3. a full disk (a 2 MB tmpfs; root only, else skipped saying so): the run
#      stops with the reason and is not marked done; on a freed disk --resume
#      finishes it.
#   bash tests/train/test_fault_injection.sh ROOT BUILD
set -euo pipefail
root=$(cd "$1" && pwd) build=$(cd "$2" && pwd)
out=$(mktemp -d)
mounted=""
trap '[[ -z "$mounted" ]] || umount "$mounted" 2>/dev/null; rm -rf "$out"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Shards in llm.c's format (uint16 tokens): a learnable stream of 40 "words".
python3 - "$out" <<'EOF'
import random, struct, sys
rng = random.Random(5)
words = [[rng.randrange(250) for _ in range(4)] for _ in range(40)]
for shard, name in enumerate(["d_val_000000.bin", "d_train_000001.bin", "d_train_000002.bin"]):
    tokens = []
    while len(tokens) < 20000:
        tokens += rng.choice(words)
    header = [20240520, 1, len(tokens)] + [0] * 253
    with open(f"{sys.argv[1]}/{name}", "wb") as f:
        f.write(struct.pack("<256i", *header) + struct.pack(f"<{len(tokens)}H", *tokens))
EOF
cat >"$out/tiny.yaml" <<EOF
model: {n_layer: 2, n_head: 2, d_model: 32, seq_len: 32, vocab_size: 256, arch: paper}
data: {train: $out/d_train_*.bin, val: $out/d_val_*.bin}
train: {micro_batch: 4, batch_tokens: 256, steps: 30, eval_every: 10, eval_tokens: 1024, ckpt_every: 1, ckpt_keep: 2}
schedule: {warmup_steps: 3}
optim: {matrix: dion2, lr: 0.02, alpha: 0.5}
EOF
train() { "$build/train_gpt" --config "$out/tiny.yaml" --set run.out_dir="$1" "${@:2}"; }  # OUT_DIR [options...]
rows() { cut -d, -f1-6 "$1"; }  # loss.csv without its timing columns
train "$out/whole" >"$out/whole.log" 2>&1 || fail "the uninterrupted run failed: $(tail -5 "$out/whole.log")"
[[ $(rows "$out/whole/loss.csv" | wc -l) -eq 31 ]] || fail "the uninterrupted run has not 30 rows"

# 1. kill -9 at random moments; resume until done.yaml appears. Each start is
# killed once it has logged 1-3 steps past the furthest so far, then 0-20 ms on
# (mid-checkpoint on a slow or loaded machine, anywhere in a step on a fast
# one): counted in steps, not seconds, so the kills land at any speed.
RANDOM=7
kills=0 furthest=0
lines() { if [[ -f "$1" ]]; then wc -l <"$1"; else echo 0; fi; }
for attempt in $(seq 1 100); do
  [[ -f "$out/killed/done.yaml" ]] && break
  "$build/train_gpt" --config "$out/tiny.yaml" --set run.out_dir="$out/killed" --resume >>"$out/killed.log" 2>&1 &
  pid=$!  # train_gpt's own (a function run in the background would be a subshell's)
  target=$((furthest + 1 + RANDOM % 3))
  while kill -0 "$pid" 2>/dev/null && [[ $(lines "$out/killed/loss.csv") -lt $target ]]; do sleep 0.005; done
  sleep "0.0$(printf '%02d' $((RANDOM % 20)))"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
  furthest=$(( $(lines "$out/killed/loss.csv") > furthest ? $(lines "$out/killed/loss.csv") : furthest ))
done
[[ -f "$out/killed/done.yaml" ]] || fail "not done after 100 starts: $(tail -5 "$out/killed.log")"
[[ $kills -ge 3 ]] || fail "only $kills kills landed: the run is too short to test"
[[ "$(rows "$out/killed/loss.csv")" == "$(rows "$out/whole/loss.csv")" ]] ||
  fail "after $kills kills loss.csv differs: $(diff <(rows "$out/whole/loss.csv") <(rows "$out/killed/loss.csv") | head)"

# 2. A flipped byte in each file of the newest checkpoint (step 30 of the finished run).
for file in model.safetensors optimizer.safetensors state.yaml COMPLETE; do
  run=$out/flip_${file%%.*}
  cp -r "$out/whole" "$run"
  rm "$run/done.yaml"
  target=$run/checkpoints/step_00000030/$file
  python3 - "$target" <<'EOF'
import os, sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[len(data) * 2 // 3] ^= 0x04  # inside the tensors' data, or a state value
open(path, "wb").write(bytes(data))
EOF
  train "$run" --resume >"$run.log" 2>&1 || fail "$file: the resume failed: $(tail -5 "$run.log")"
  grep -q "checkpoint '$run/checkpoints/step_00000030': .*\(damaged\|unreadable\|checksum\)" "$run.log" ||
    fail "$file: the damage was not named: $(grep -i 'checkpoint\|error' "$run.log" | head -5)"
  grep -q "resumed from $run/checkpoints/step_00000029" "$run.log" || fail "$file: not resumed from step 29"
  [[ -d "$run/checkpoints/step_00000030.damaged" ]] || fail "$file: the damaged checkpoint was not set aside"
  [[ "$(rows "$run/loss.csv")" == "$(rows "$out/whole/loss.csv")" ]] || fail "$file: loss.csv differs after the resume"
  [[ -f "$run/done.yaml" ]] || fail "$file: the resumed run is not done"
done

# 3. A full disk: a tmpfs too small for the run's checkpoints.
if [[ $(id -u) -ne 0 ]] || ! mkdir -p "$out/disk" || ! mount -t tmpfs -o size=2m tmpfs "$out/disk" 2>/dev/null; then
  echo "full disk: skipped (mounting a small tmpfs needs root)"
else
  mounted=$out/disk
  if train "$out/disk/run" --set train.ckpt_keep=0 >"$out/full.log" 2>&1; then fail "a run on a full disk exited 0"; fi
  grep -q "No space left on device\|disk full" "$out/full.log" || fail "the full disk was not named: $(tail -3 "$out/full.log")"
  [[ ! -f "$out/disk/run/done.yaml" ]] || fail "a run stopped by a full disk is marked done"
  # Free the disk (the oldest checkpoints), then finish: equal to the uninterrupted run.
  rm -rf "$out/disk/run/checkpoints"/*.partial
  ls -d "$out/disk/run/checkpoints"/step_???????? | head -n -1 | xargs rm -rf
  train "$out/disk/run" --resume --set train.ckpt_keep=1 >>"$out/full.log" 2>&1 ||
    fail "the resume on a freed disk failed: $(tail -5 "$out/full.log")"
  [[ "$(rows "$out/disk/run/loss.csv")" == "$(rows "$out/whole/loss.csv")" ]] || fail "loss.csv differs after the full disk"
  echo "full disk: stopped with the reason, resumed to the end"
fi
echo "fault injection: $kills kills -9 resumed to the uninterrupted losses; a flipped byte in each checkpoint file named and passed over"
