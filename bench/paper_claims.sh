#!/usr/bin/env bash
# The Dion2 paper's four claims (section 4) on SOTU, over three seeds:
#   1. Muon beats AdamW;
#   2. Dion2's loss degrades gently as alpha shrinks (0.5, 0.25, 0.125);
#   3. l1 and random selection are about equal;
#   4. the selective decay M[K] *= mu is essential: the full decay M *= mu
#      "leads to significantly higher loss" (Figure 4).
# Base: configs/sotu_dion2.yaml (GPT-2, 4 layers, d_model 128, 1024 tokens a
# step), one OpenMP thread a run, --jobs runs at once (default 2).
#
#   bash bench/paper_claims.sh [OUT_DIR] [--phase pilot|lr|probe|study|table|all] [--jobs N]
#                              [--only GLOB]
# --only GLOB runs only the phase's runs whose name matches GLOB (e.g.
# 'dion2_random_alpha0.125_seed*'): a subset remade or finished on its own.
#
# Phases (all: lr, probe, study, table; the pilot is run on its own):
#   pilot  Dion2 l1 alpha 0.125, selective against full decay, seed 1337,
#          1800 steps (0.93 of an epoch of SOTU's 1.98M training tokens): where
#          the two rules part, to choose the study's budget (STUDY_STEPS).
#   lr     each optimizer's lr from a sweep at half the study's budget, seed
#          1337: AdamW, Muon and Dion2 (l1, alpha 0.25, selective); the lowest
#          final val loss wins (OUT_DIR/lr/chosen_lr), and a winner at the edge
#          of its grid extends the grid past it. Every Dion2 variant takes
#          Dion2's lr, as in the paper (one lr over alpha, selection and decay).
#   probe  why the decay rules differ or not (bench/dion2_decay_probe.cpp): how
#          long slices go unselected and how large M grows, in six of the
#          study's seed-1337 runs (l1 at alpha 0.25 and 0.125, random selection
#          at 0.125, each under both rules), made by the probe instead of
#          train_gpt (the same training: the study then skips them); and two
#          runs beyond the study: l1 at alpha 0.0625 under each rule.
#   study  10 optimizers x seeds 1337 1338 1339 at STUDY_STEPS: AdamW, Muon,
#          Dion2 l1 at alpha 0.5, 0.25, 0.125, random selection at 0.25 and
#          0.125, the full decay at 0.25 and 0.125 with l1 and at 0.125 with
#          random selection (error feedback without l1's preference for large
#          slices; added after the probe found the rules' largest gap there).
#   table  OUT_DIR/paper_claims.{md,png} (bench/paper_claims.py): mean, standard
#          deviation and per-seed final val loss, and the differences the
#          claims rest on, against their seed spread.
# Every phase is resumable: finished runs are skipped, interrupted ones resumed
# (scripts/sweep_lib.sh); bench/results/paper_claims_sotu_cpu.md holds a result.
set -euo pipefail

out=out/paper_claims
phase=all
jobs=2
only='*'
while [ $# -gt 0 ]; do
  case $1 in
    --phase) phase=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -*) echo "paper_claims: unknown option '$1'" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
case $phase in pilot | lr | probe | study | table | all) ;; *) echo "paper_claims: unknown phase '$phase'" >&2; exit 2 ;; esac
case $jobs in '' | *[!0-9]* | 0) echo "paper_claims: --jobs must be a positive integer, got '$jobs'" >&2; exit 2 ;; esac

source "$(dirname "${BASH_SOURCE[0]}")/../scripts/sweep_lib.sh"
base=$sweep_root/configs/sotu_dion2.yaml
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# The study's budget, from the pilot (bench/results/paper_claims_sotu_cpu.md):
# the rules' gap holds its sign from step 100 to 1800, and by step 977 every
# seed's data order has reached both of SOTU's training shards.
STUDY_STEPS=1200
SEEDS=(1337 1338 1339)
# The lr phase's first grid of each optimizer, and the settings that make it that optimizer.
declare -A lrs=([adamw]="1e-3 2e-3 4e-3 8e-3" [muon]="0.01 0.02 0.04 0.08" [dion2]="0.01 0.02 0.04 0.08")
declare -A family_settings=([adamw]="optim.matrix=adamw optim.weight_decay=0.1" [muon]="optim.matrix=muon"
                            [dion2]="optim.matrix=dion2 optim.alpha=0.25")

# run_all FUNCTION: FUNCTION NAME SETTINGS... for each run queued in
# names/settings (settings[i]: the overrides of names[i], space-separated),
# `jobs` at a time. queue skips a run whose name matches neither --only nor
# the phase's own choice of runs (phase_runs, a glob).
names=()
settings=()
phase_runs='*'
queue() {
  # shellcheck disable=SC2053  # globs
  [[ $1 == $only && $1 == $phase_runs ]] || return 0
  names+=("$1"); shift; settings+=("$*")
}
run_all() {
  local queue_file=$sweep_out/.queue
  echo 0 > "$queue_file"
  local worker pids=()
  for ((worker = 0; worker < jobs; worker++)); do
    (
      while true; do
        i=$(flock "$queue_file" bash -c 'i=$(cat "$1"); echo $((i + 1)) > "$1"; echo "$i"' _ "$queue_file")
        [ "$i" -lt "${#names[@]}" ] || exit 0
        # shellcheck disable=SC2086  # settings are key=value words
        "$1" "${names[i]}" ${settings[i]}
      done
    ) &
    pids+=($!)
  done
  local failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  rm -f "$queue_file"
  [ $failed -eq 0 ] || { echo "paper_claims: a run failed (above)" >&2; exit 1; }
  sweep_runs=("${names[@]}")
  names=()
  settings=()
}

common="train.eval_every=100 train.ckpt_every=200"

if [ "$phase" = pilot ]; then
  sweep_begin pilot "$base" "$out/pilot"
  for decay in selective full; do
    queue "dion2_l1_alpha0.125_${decay}" $common train.steps=1800 optim.matrix=dion2 optim.alpha=0.125 \
      optim.decay=$decay
  done
  run_all run_variant
  sweep_end "Pilot: Dion2 l1 alpha 0.125, selective vs full decay, 1800 steps"
  exit 0
fi

if [ "$phase" = lr ] || [ "$phase" = all ]; then
  sweep_begin lr "$base" "$out/lr"
  lr_steps=$((STUDY_STEPS / 2))
  # The grid, then one more lr beyond whichever edge wins (half the lowest, twice
  # the highest) until every optimizer's best lr has a worse one on each side.
  for _ in 1 2 3 4; do  # at most 3 extensions
    for family in adamw muon dion2; do
      for lr in ${lrs[$family]}; do
        queue "${family}_lr$lr" $common train.steps=$lr_steps ${family_settings[$family]} optim.lr=$lr
      done
    done
    run_all run_variant
    /usr/bin/python3 "$sweep_root/scripts/results.py" "$out/lr" -o "$out/lr/lr" > /dev/null
    /usr/bin/python3 "$sweep_root/bench/paper_claims.py" --choose-lr "$out/lr/lr.csv" > "$out/lr/chosen_lr"
    extended=0
    while read -r family lr _ edge; do
      case $edge in
        lower) lrs[$family]+=" $(awk -v x="$lr" 'BEGIN { print x / 2 }')"; extended=1 ;;
        upper) lrs[$family]+=" $(awk -v x="$lr" 'BEGIN { print x * 2 }')"; extended=1 ;;
      esac
    done < "$out/lr/chosen_lr"
    [ $extended -eq 1 ] || break
  done
  sweep_runs=()  # every lr tried, extensions of earlier starts included
  for dir in "$out"/lr/*_lr*/; do sweep_runs+=("$(basename "$dir")"); done
  sweep_end "lr sweep: $lr_steps steps, seed 1337"
  echo "paper_claims: chosen lr (optimizer, lr, final val loss, where in its grid; $out/lr/lr_choice.png):"
  cat "$out/lr/chosen_lr"
fi

chosen_lr() {
  local lr
  lr=$(awk -v f="$1" '$1 == f { print $2 }' "$out/lr/chosen_lr" 2> /dev/null)
  [ -n "$lr" ] || { echo "paper_claims: no lr chosen for $1 in $out/lr/chosen_lr: run --phase lr first" >&2; exit 1; }
  echo "$lr"
}

# The study's runs over the given seeds (queue NAME SETTINGS... for each), one
# optimizer after another across the seeds, the decay rules first (the claim the
# study is for): a study stopped part way has whole optimizers to compare.
queue_study() {
  local seed variant s words
  local variants=(
    "dion2_l1_alpha0.25 optim.matrix=dion2 optim.lr=$dion2_lr optim.alpha=0.25"
    "dion2_l1_alpha0.25_full_decay optim.matrix=dion2 optim.lr=$dion2_lr optim.alpha=0.25 optim.decay=full"
    "dion2_l1_alpha0.125 optim.matrix=dion2 optim.lr=$dion2_lr optim.alpha=0.125"
    "dion2_l1_alpha0.125_full_decay optim.matrix=dion2 optim.lr=$dion2_lr optim.alpha=0.125 optim.decay=full"
    "adamw optim.matrix=adamw optim.lr=$adamw_lr optim.weight_decay=0.1"
    "muon optim.matrix=muon optim.lr=$muon_lr"
    "dion2_l1_alpha0.5 optim.matrix=dion2 optim.lr=$dion2_lr optim.alpha=0.5"
    "dion2_random_alpha0.25 optim.matrix=dion2 optim.lr=$dion2_lr optim.alpha=0.25 optim.select=random"
    "dion2_random_alpha0.125 optim.matrix=dion2 optim.lr=$dion2_lr optim.alpha=0.125 optim.select=random"
    "dion2_random_alpha0.125_full_decay optim.matrix=dion2 optim.lr=$dion2_lr optim.alpha=0.125 optim.select=random optim.decay=full"
  )
  # shellcheck disable=SC2206,SC2086  # a variant is its name and key=value words
  for variant in "${variants[@]}"; do
    for seed in "$@"; do
      s="$common train.steps=$STUDY_STEPS run.seed=$seed"
      words=($variant)
      queue "${words[0]}_seed$seed" $s "${words[@]:1}"
    done
  done
}

# run_probe NAME SETTINGS...: the study's run NAME made by bench/dion2_decay_probe
# (the same training, so the study skips it), its statistics in the run's
# selection_probe.csv. The probe does not resume: an interrupted probe run keeps
# the rows it wrote (the statistics then stop at that step) and train_gpt
# finishes its training from the newest checkpoint; without a checkpoint it
# starts over.
run_probe() {
  local run=$1 dir=$out/study/$1
  shift
  if [ ! -f "$dir/selection_probe.csv" ] && [ -f "$dir/selection_probe.csv.tmp" ] &&
    compgen -G "$dir/checkpoints/step_*" > /dev/null; then
    mv "$dir/selection_probe.csv.tmp" "$dir/selection_probe.csv"
    echo "probe: $run was interrupted; its statistics stop at step $(tail -n 1 "$dir/selection_probe.csv" |
      cut -d, -f1), train_gpt finishes its training"
  fi
  if [ -f "$dir/selection_probe.csv" ]; then
    run_variant "$run" "$@"  # skips a finished run, resumes an interrupted one
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "probe: running $run ($*)"
  local args=(--config "$base" --set "run.out_dir=$dir" --csv "$dir/selection_probe.csv" --every 20)
  for o in "$@"; do args+=(--set "$o"); done
  "$sweep_root/build/dion2_decay_probe" "${args[@]}" > "$out/study/$run.out" 2>&1 ||
    { echo "probe: $run failed; the end of $out/study/$run.out:" >&2; tail -n 5 "$out/study/$run.out" >&2; exit 1; }
}

if [ "$phase" = probe ] || [ "$phase" = study ] || [ "$phase" = all ]; then
  adamw_lr=$(chosen_lr adamw)
  muon_lr=$(chosen_lr muon)
  dion2_lr=$(chosen_lr dion2)
fi

if [ "$phase" = probe ] || [ "$phase" = all ]; then
  [ -x "$sweep_root/build/dion2_decay_probe" ] ||
    { echo "paper_claims: build/dion2_decay_probe is missing: build the project (scripts/setup.sh)" >&2; exit 2; }
  sweep_begin probe "$base" "$out/study"
  phase_runs='@(dion2_l1_alpha0.25|dion2_l1_alpha0.125|dion2_random_alpha0.125)?(_full_decay)_seed*'
  queue_study 1337
  phase_runs='*'
  # Beyond the study, on one seed: a smaller alpha (slices wait longer between
  # selections) under each rule.
  s="$common train.steps=$STUDY_STEPS run.seed=1337 optim.matrix=dion2 optim.lr=$dion2_lr"
  queue dion2_l1_alpha0.0625_seed1337 $s optim.alpha=0.0625
  queue dion2_l1_alpha0.0625_full_decay_seed1337 $s optim.alpha=0.0625 optim.decay=full
  run_all run_probe
fi

if [ "$phase" = study ] || [ "$phase" = all ]; then
  sweep_begin study "$base" "$out/study"
  queue_study "${SEEDS[@]}"
  run_all run_variant
fi

if [ "$phase" = table ] || [ "$phase" = all ]; then
  /usr/bin/python3 "$sweep_root/bench/paper_claims.py" "$out/study" -o "$out/paper_claims"
fi
