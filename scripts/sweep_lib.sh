# Shared by the sweep scripts (sourced, not run). A sweep script calls
#   sweep_begin NAME "$@"          its arguments: BASE_CONFIG OUT_DIR [--set key=value ...]
#   run_variant RUN key=value ...  once per run: OUT_DIR/RUN, the base config plus
#                                  the sweep's --set arguments plus these overrides
#   sweep_end "TITLE"              OUT_DIR/NAME.png (val loss, last 25% zoomed)
#                                  and OUT_DIR/NAME.md (final losses, optimizer ms)
# A run with done.yaml is complete and skipped; any other is resumed from its
# last checkpoint (or started). Each run's console output is in OUT_DIR/RUN.out.
set -euo pipefail

sweep_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sweep_begin() {
  sweep_name=$1
  shift
  if [ $# -lt 2 ]; then
    echo "usage: $0 BASE_CONFIG OUT_DIR [--set key=value ...]" >&2
    exit 2
  fi
  sweep_base=$1
  sweep_out=$2
  shift 2
  sweep_extra=("$@")
  [ -f "$sweep_base" ] || { echo "$sweep_name: base config '$sweep_base' does not exist" >&2; exit 2; }
  [ -x "$sweep_root/build/train_gpt" ] || { echo "$sweep_name: build/train_gpt is missing: run scripts/setup.sh" >&2; exit 2; }
  for ((i = 0; i < ${#sweep_extra[@]}; i += 2)); do
    if [ "${sweep_extra[i]}" != "--set" ] || [ $((i + 1)) -ge ${#sweep_extra[@]} ]; then
      echo "$sweep_name: extra arguments must be pairs '--set key=value', got '${sweep_extra[*]}'" >&2
      exit 2
    fi
  done
  mkdir -p "$sweep_out"
  sweep_runs=()
}

run_variant() {
  local run=$1
  shift
  local dir="$sweep_out/$run"
  sweep_runs+=("$run")
  if [ -f "$dir/done.yaml" ]; then
    echo "$sweep_name: $run is complete, skipped"
    return
  fi
  local overrides=()
  for o in "$@"; do overrides+=(--set "$o"); done
  echo "$sweep_name: running $run (${*:-base config})"
  mkdir -p "$dir"
  if ! "$sweep_root/build/train_gpt" --config "$sweep_base" --resume "${sweep_extra[@]}" "${overrides[@]}" \
      --set "run.out_dir=$dir" > "$sweep_out/$run.out" 2>&1; then
    echo "$sweep_name: run $run failed; the end of $sweep_out/$run.out:" >&2
    tail -n 5 "$sweep_out/$run.out" >&2
    exit 1
  fi
}

sweep_end() {
  local title=$1 csvs=()
  for run in "${sweep_runs[@]}"; do csvs+=("$sweep_out/$run/loss.csv"); done
  /usr/bin/python3 "$sweep_root/scripts/plot_loss.py" "${csvs[@]}" --labels "${sweep_runs[@]}" --val-only \
    --inset 0.25 --title "$title" -o "$sweep_out/$sweep_name.png" --summary "$sweep_out/$sweep_name.md"
}
