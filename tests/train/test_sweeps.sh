#!/usr/bin/env bash
# The sweep scripts end to end in CI size (a tiny model, 4 steps, on the SOTU
# shards): every run of each sweep, a PNG, a CSV and a table per sweep; the
# selection sweep reuses the alpha sweep's identical runs; a second call skips
# runs finished with the same config and resumes an interrupted one; a changed
# config stops the sweep naming the change, and --force sets the old runs aside
# and trains anew; bad arguments are refused with a message.
source "$(dirname "${BASH_SOURCE[0]}")/../sotu_script_test.sh" "$1"
tiny=(--set model.n_layer=1 --set model.n_head=2 --set model.d_model=32 --set model.seq_len=32
      --set train.micro_batch=2 --set train.batch_tokens=64 --set train.steps=4 --set train.eval_every=2
      --set train.eval_tokens=64 --set train.ckpt_every=2 --set train.ckpt_keep=0 --set schedule.warmup_steps=1)
fail() { echo "FAIL: $*"; exit 1; }

for sweep in alpha selection decay; do
  bash scripts/sweep_$sweep.sh configs/sotu_dion2.yaml "$out/$sweep" "${tiny[@]}" > "$out/$sweep.log"
  [ -s "$out/$sweep/sweep_$sweep.png" ] || fail "sweep_$sweep drew no PNG"
  [ "$(head -c 8 "$out/$sweep/sweep_$sweep.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "not a PNG"
  [ -s "$out/$sweep/sweep_$sweep.csv" ] || fail "sweep_$sweep wrote no CSV"
done
[ "$(ls -d "$out"/alpha/*/ | wc -l)" -eq 4 ] || fail "sweep_alpha should make 4 runs"
[ "$(ls -d "$out"/selection/*/ | wc -l)" -eq 6 ] || fail "sweep_selection should make 6 runs"
[ "$(ls -d "$out"/decay/*/ | wc -l)" -eq 4 ] || fail "sweep_decay should make 4 runs"
# The l1 runs of the selection sweep are the alpha sweep's (same config hash): linked, not trained.
[ "$(grep -c "reuses the identical finished run" "$out/selection.log")" -eq 3 ] || fail "no reuse: $(cat "$out/selection.log")"
[ "$(readlink "$out/selection/dion2_l1_alpha0.25")" = "../alpha/dion2_l1_alpha0.25" ] || fail "the reused run is not linked"
# The table: a row per run, the settings that differ between them as columns.
md=$out/selection/sweep_selection.md
head -1 "$md" | grep -q "^| run | optim.alpha | optim.select | steps | tokens | final train | final val |" ||
  fail "table header: $(head -1 "$md")"
grep -q "^| dion2_random_alpha0.125 | 0.125 | random | 4 | 256 | " "$md" || fail "summary row missing: $(cat "$md")"
[ "$(grep -c "^| dion2_" "$md")" -eq 6 ] || fail "6 rows expected: $(cat "$md")"
grep -q "optim.decay=full" "$out/decay.log" || fail "the decay sweep did not set optim.decay=full"
grep -q 'decay: "full"' "$out/decay/dion2_full_alpha0.25/config.yaml" || fail "config.yaml lacks the full decay"
grep -q "alpha: 0.125" "$out/alpha/dion2_l1_alpha0.125/config.yaml" || fail "config.yaml lacks alpha 0.125"

# Again: finished runs of the same config are skipped; an interrupted one (no
# done.yaml, its last checkpoint gone) is resumed from the checkpoint before.
rm "$out/alpha/muon/done.yaml"
rm -r "$out/alpha/muon/checkpoints/step_00000004"
bash scripts/sweep_alpha.sh configs/sotu_dion2.yaml "$out/alpha" "${tiny[@]}" > "$out/again.log"
[ "$(grep -c "is complete (config [0-9a-f]*), skipped" "$out/again.log")" -eq 3 ] || fail "complete runs were not skipped: $(cat "$out/again.log")"
grep -q "resumed from" "$out/alpha/muon.out" || fail "the interrupted run was not resumed"
[ -f "$out/alpha/muon/done.yaml" ] || fail "the resumed run did not finish"

# A changed config (one more step): the sweep names the change and stops, touching nothing ...
cp "$out/alpha/muon/loss.csv" "$out/muon_loss.csv"
if bash scripts/sweep_alpha.sh configs/sotu_dion2.yaml "$out/alpha" "${tiny[@]}" --set train.steps=5 \
    > "$out/changed.log" 2> "$out/changed.err"; then fail "a changed config reused stale runs: $(cat "$out/changed.log")"; fi
grep -q "train.steps 4 -> 5" "$out/changed.err" || fail "the change was not named: $(cat "$out/changed.err")"
grep -q "rerun with --force" "$out/changed.err" || fail "no way forward: $(cat "$out/changed.err")"
cmp -s "$out/muon_loss.csv" "$out/alpha/muon/loss.csv" || fail "the refused sweep changed the old run"
# ... and --force sets each old run aside and trains the new config.
bash scripts/sweep_alpha.sh configs/sotu_dion2.yaml "$out/alpha" --force "${tiny[@]}" --set train.steps=5 > "$out/forced.log"
[ "$(grep -c "set aside as" "$out/forced.log")" -eq 4 ] || fail "--force: $(cat "$out/forced.log")"
cmp -s "$out/muon_loss.csv" "$out/alpha/muon.replaced-1/loss.csv" || fail "the old run was not kept aside"
[ "$(tail -n +2 "$out/alpha/muon/loss.csv" | wc -l)" -eq 5 ] || fail "the new run has not 5 steps"
grep -q "^| muon | 0.25 | muon | 5 | 320 | " "$out/alpha/sweep_alpha.md" || fail "the table is not the new runs': $(cat "$out/alpha/sweep_alpha.md")"

# Bad arguments.
if bash scripts/sweep_alpha.sh configs/missing.yaml "$out/x" 2> "$out/err"; then fail "a missing base config was accepted"; fi
grep -q "base config 'configs/missing.yaml' does not exist" "$out/err" || fail "unclear error: $(cat "$out/err")"
if bash scripts/sweep_alpha.sh configs/sotu_dion2.yaml "$out/x" train.steps=3 2> "$out/err"; then fail "a bare override was accepted"; fi
grep -q "must be --force or pairs '--set key=value'" "$out/err" || fail "unclear error: $(cat "$out/err")"
echo "sweeps: 14 runs (3 reused), 3 PNGs, CSVs and tables; skip, resume, a changed config, --force and bad arguments checked"
