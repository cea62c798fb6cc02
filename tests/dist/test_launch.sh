#!/usr/bin/env bash
# scripts/launch.sh: the mpirun line it composes for several GPU nodes (dry run),
# its refusals, and a real 2-rank CPU run of 3 steps that trains and logs 2 ranks.
source "$(dirname "${BASH_SOURCE[0]}")/../sotu_script_test.sh" "$1"
fail() { echo "FAIL: $*"; exit 1; }
printf 'node-a slots=8\n# a comment\n\nnode-b slots=8\n' > "$out/hosts"
line=$(bash scripts/launch.sh configs/paper_1b_dion2.yaml --cuda --per-node 8 --hostfile "$out/hosts" --dry-run \
       --set train.steps=5)
for want in "mpirun " "-np 16 " "--hostfile $out/hosts " "--map-by ppr:8:node " "--config configs/paper_1b_dion2.yaml " \
            "--set run.device=cuda --set train.steps=5"; do
  [[ "$line" == *"$want"* ]] || fail "dry run lacks '$want': $line"
done
if bash scripts/launch.sh configs/default.yaml --per-node 0 --dry-run > "$out/refused" 2>&1; then fail "--per-node 0 accepted"; fi
grep -q "per-node must be a positive integer" "$out/refused" || fail "unclear refusal: $(cat "$out/refused")"
if bash scripts/launch.sh configs/none.yaml --dry-run > "$out/refused" 2>&1; then fail "a missing config accepted"; fi
grep -q "no config file" "$out/refused" || fail "unclear refusal: $(cat "$out/refused")"

OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 MPIRUN_FLAGS=--oversubscribe \
  bash scripts/launch.sh configs/default.yaml --per-node 2 --set run.out_dir="$out/run" --set train.steps=3 \
  --set train.micro_batch=2 --set train.eval_every=0 --set train.ckpt_every=0 --set train.sample_every=0 > "$out/log" 2>&1 ||
  fail "the 2-rank run failed: $(tail -20 "$out/log")"
[ "$(tail -n +2 "$out/run/loss.csv" | wc -l)" -eq 3 ] || fail "expected 3 steps in loss.csv: $(cat "$out/run/loss.csv")"
grep -q "2 ranks" "$out/log" || fail "the log does not say 2 ranks: $(head -20 "$out/log")"
echo "launch: the multi-node line, two refusals, a 2-rank run of 3 steps"
