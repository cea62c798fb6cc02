# Shared by the sweep scripts (sourced, not run). A sweep script calls
#   sweep_begin NAME "$@"          its arguments: BASE_CONFIG OUT_DIR [--force] [--set key=value ...]
#   run_variant RUN key=value ...  once per run: OUT_DIR/RUN, the base config plus
#                                  the sweep's --set arguments plus these overrides
#   sweep_end "TITLE"              OUT_DIR/NAME.png (val loss, last 25% zoomed) and
#                                  OUT_DIR/NAME.csv, NAME.md (scripts/results.py)
# Each run is the config it resolves to, named by its hash (train_gpt --describe;
# done.yaml records it):
#   - finished with that hash: skipped;
#   - not yet started, and a sibling sweep (another folder beside OUT_DIR) holds a
#     finished run with that hash: reused (a symlink to it), not trained again;
#   - unfinished with checkpoints of that config: resumed;
#   - a run of another config (finished or not): the sweep names what changed
#     and stops; with --force that run is set aside as RUN.replaced-N and trained anew.
# Each run's console output is in OUT_DIR/RUN.out.
set -euo pipefail

sweep_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sweep_begin() {
  sweep_name=$1
  shift
  if [ $# -lt 2 ]; then
    echo "usage: $0 BASE_CONFIG OUT_DIR [--force] [--set key=value ...]" >&2
    exit 2
  fi
  sweep_base=$1
  sweep_out=$2
  shift 2
  sweep_force=0
  sweep_extra=()
  while [ $# -gt 0 ]; do
    if [ "$1" = "--force" ]; then
      sweep_force=1
      shift
    elif [ "$1" = "--set" ] && [ $# -ge 2 ]; then
      sweep_extra+=(--set "$2")
      shift 2
    else
      echo "$sweep_name: extra arguments must be --force or pairs '--set key=value', got '$*'" >&2
      exit 2
    fi
  done
  [ -f "$sweep_base" ] || { echo "$sweep_name: base config '$sweep_base' does not exist" >&2; exit 2; }
  [ -x "$sweep_root/build/train_gpt" ] || { echo "$sweep_name: build/train_gpt is missing: run scripts/setup.sh" >&2; exit 2; }
  mkdir -p "$sweep_out"
  sweep_runs=()
}

# The config_hash a done.yaml records (empty when it has none).
done_hash() { sed -n 's/^config_hash: "\{0,1\}\([0-9a-f]*\)"\{0,1\}$/\1/p' "$1"; }

run_variant() {
  local run=$1
  shift
  local dir="$sweep_out/$run"
  sweep_runs+=("$run")
  local args=(--config "$sweep_base" "${sweep_extra[@]}")
  for o in "$@"; do args+=(--set "$o"); done
  args+=(--set "run.out_dir=$dir")
  local hash
  hash=$("$sweep_root/build/train_gpt" "${args[@]}" --describe 2> "$sweep_out/$run.out" |
         sed -n 's/^config hash: //p') || true
  if [ -z "$hash" ]; then
    echo "$sweep_name: run $run has no valid config:" >&2
    cat "$sweep_out/$run.out" >&2
    exit 1
  fi
  if [ -f "$dir/done.yaml" ] && [ "$(done_hash "$dir/done.yaml")" = "$hash" ]; then
    echo "$sweep_name: $run is complete (config $hash), skipped"
    return
  fi
  if [ ! -e "$dir" ]; then
    local done
    for done in "$(dirname "$sweep_out")"/*/*/done.yaml; do
      [ -f "$done" ] && [ "$(done_hash "$done")" = "$hash" ] || continue
      local found
      found=$(dirname "$done")
      [ "$(cd "$(dirname "$found")" && pwd -P)" = "$(cd "$sweep_out" && pwd -P)" ] && continue
      ln -s "../$(basename "$(dirname "$found")")/$(basename "$found")" "$dir"
      echo "$sweep_name: $run reuses the identical finished run $found (config $hash)"
      return
    done
  fi
  echo "$sweep_name: running $run (${*:-base config}; config $hash)"
  mkdir -p "$dir"
  local rc=0
  "$sweep_root/build/train_gpt" "${args[@]}" --resume > "$sweep_out/$run.out" 2>&1 || rc=$?
  if [ $rc -eq 3 ] && [ $sweep_force -eq 1 ]; then  # train_gpt: out_dir holds a run of another config
    local n=1
    while [ -e "$dir.replaced-$n" ]; do n=$((n + 1)); done
    mv "$dir" "$dir.replaced-$n"
    echo "$sweep_name: $run held a run of another config, set aside as $dir.replaced-$n; training it anew"
    mkdir -p "$dir"
    rc=0
    "$sweep_root/build/train_gpt" "${args[@]}" --resume > "$sweep_out/$run.out" 2>&1 || rc=$?
  fi
  if [ $rc -eq 3 ]; then
    echo "$sweep_name: $dir holds a run of another config than this sweep asks for:" >&2
    grep -o "config[^:]*: .*" "$sweep_out/$run.out" | tail -n 1 >&2 || tail -n 3 "$sweep_out/$run.out" >&2
    echo "$sweep_name: rerun with --force to set that run aside and train this one (or use another OUT_DIR)" >&2
    exit 1
  elif [ $rc -ne 0 ]; then
    echo "$sweep_name: run $run failed; the end of $sweep_out/$run.out:" >&2
    tail -n 5 "$sweep_out/$run.out" >&2
    exit 1
  fi
}

sweep_end() {
  local title=$1 csvs=()
  for run in "${sweep_runs[@]}"; do csvs+=("$sweep_out/$run/loss.csv"); done
  /usr/bin/python3 "$sweep_root/scripts/plot_loss.py" "${csvs[@]}" --labels "${sweep_runs[@]}" --val-only \
    --zoom 0.25 --title "$title" -o "$sweep_out/$sweep_name.png"
  local dirs=()
  for run in "${sweep_runs[@]}"; do dirs+=("$sweep_out/$run"); done
  /usr/bin/python3 "$sweep_root/scripts/results.py" "${dirs[@]}" -o "$sweep_out/$sweep_name"
}
