#!/usr/bin/env bash
# The sweep scripts end to end in CI size (a tiny model, 4 steps, on the SOTU
# shards): every run of each sweep, a PNG and a summary table per sweep; a
# second call skips complete runs and resumes an interrupted one; bad
# arguments are refused with a message.
source "$(dirname "${BASH_SOURCE[0]}")/../sotu_script_test.sh" "$1"
tiny=(--set model.n_layer=1 --set model.n_head=2 --set model.d_model=32 --set model.seq_len=32
      --set train.micro_batch=2 --set train.batch_tokens=64 --set train.steps=4 --set train.eval_every=2
      --set train.eval_tokens=64 --set train.ckpt_every=2 --set train.ckpt_keep=0 --set schedule.warmup_steps=1)
fail() { echo "FAIL: $*"; exit 1; }

for sweep in alpha selection decay; do
  bash scripts/sweep_$sweep.sh configs/sotu_dion2.yaml "$out/$sweep" "${tiny[@]}" > "$out/$sweep.log"
  [ -s "$out/$sweep/sweep_$sweep.png" ] || fail "sweep_$sweep drew no PNG"
  [ "$(head -c 8 "$out/$sweep/sweep_$sweep.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "not a PNG"
done
[ "$(ls -d "$out"/alpha/*/ | wc -l)" -eq 4 ] || fail "sweep_alpha should make 4 runs"
[ "$(ls -d "$out"/selection/*/ | wc -l)" -eq 6 ] || fail "sweep_selection should make 6 runs"
[ "$(ls -d "$out"/decay/*/ | wc -l)" -eq 4 ] || fail "sweep_decay should make 4 runs"
grep -q "^| dion2_random_alpha0.125 | 4 |" "$out/selection/sweep_selection.md" || fail "summary row missing: $(cat "$out/selection/sweep_selection.md")"
grep -q "optim.decay=full" "$out/decay.log" || fail "the decay sweep did not set optim.decay=full"
grep -q 'decay: "full"' "$out/decay/dion2_full_alpha0.25/config.yaml" || fail "config.yaml lacks the full decay"
grep -q "alpha: 0.125" "$out/alpha/dion2_l1_alpha0.125/config.yaml" || fail "config.yaml lacks alpha 0.125"

# Again: complete runs are skipped; an interrupted one (no done.yaml, its last
# checkpoint gone) is resumed from the checkpoint before.
rm "$out/alpha/muon/done.yaml"
rm -r "$out/alpha/muon/checkpoints/step_00000004"
bash scripts/sweep_alpha.sh configs/sotu_dion2.yaml "$out/alpha" "${tiny[@]}" > "$out/again.log"
[ "$(grep -c "is complete, skipped" "$out/again.log")" -eq 3 ] || fail "complete runs were not skipped: $(cat "$out/again.log")"
grep -q "resumed from" "$out/alpha/muon.out" || fail "the interrupted run was not resumed"
[ -f "$out/alpha/muon/done.yaml" ] || fail "the resumed run did not finish"

# Bad arguments.
if bash scripts/sweep_alpha.sh configs/missing.yaml "$out/x" 2> "$out/err"; then fail "a missing base config was accepted"; fi
grep -q "base config 'configs/missing.yaml' does not exist" "$out/err" || fail "unclear error: $(cat "$out/err")"
if bash scripts/sweep_alpha.sh configs/sotu_dion2.yaml "$out/x" train.steps=3 2> "$out/err"; then fail "a bare override was accepted"; fi
grep -q "must be pairs '--set key=value'" "$out/err" || fail "unclear error: $(cat "$out/err")"
echo "sweeps: 14 runs, 3 PNGs and tables; skip, resume and bad arguments checked"
