#!/usr/bin/env bash
# The GPU check, in one call on a machine with an NVIDIA GPU, CUDA, cuBLAS and
# CMake: builds for sm_90, runs every gpu test, a short training under
# compute-sanitizer (memcheck and racecheck) and the GPU benchmarks (bench_gpu
# and the paper's micro benchmark on one rank), then prints one table and
# writes it, with the device, date and commit, to bench/results/gpu_check_<device>.md.
#
#   bash scripts/gpu_check.sh --fetch   where apt works: downloads the Debian
#                                       packages the build needs into .gpu_deps/
#   bash scripts/gpu_check.sh [--out DIR] [--only STEPS] [--deadline SECONDS]
#                                       on the GPU machine
#
#   --out DIR       also keep DIR/gpu_check.md and DIR/gpu_check_logs.tar.gz up to
#                   date after every step (for a machine whose tree is not kept)
#   --only STEPS    a comma list of build,tests,sanitizer,bench,micro (default all;
#                   the build runs always)
#   --deadline S    the whole check ends within S seconds (default 540): every step
#                   runs under a timeout of what is left, up to its own cap, and a
#                   step with too little time left is reported as not run
#
# A GPU machine without our Debian packages (yaml-cpp, spdlog, fmt, CLI11,
# OpenBLAS, GoogleTest) and without internet gets them from .gpu_deps/,
# unpacked under /tmp (never over /). The build leaves MPI out: one GPU, one process.
# A test that crashes or hangs test_gpu is named and the rest run again without it.
# Environment: LLMDION_COMMIT (the commit, when .git is absent), JOBS,
# BENCH_BATCH (GPT-2 124M micro-batch, default 16).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
deps_dir=$root/.gpu_deps
packages=(libyaml-cpp-dev libyaml-cpp0.7 libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libcli11-dev libgtest-dev
          libopenblas-openmp-dev libopenblas0-openmp libopenblas-dev libgfortran5 libquadmath0)

if [[ "${1:-}" == "--fetch" ]]; then
  mkdir -p "$deps_dir"
  (cd "$deps_dir" && apt-get download "${packages[@]}") || { echo "gpu_check: apt-get download failed" >&2; exit 1; }
  echo "gpu_check: $(ls "$deps_dir"/*.deb | wc -l) packages in $deps_dir ($(du -sh "$deps_dir" | cut -f1))"
  exit 0
fi

fail() { echo "gpu_check: $*" >&2; exit 1; }
copy_dir="" only="build,tests,sanitizer,bench,micro" deadline=540
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) copy_dir=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --deadline) deadline=$2; shift 2 ;;
    *) fail "unknown argument '$1' (see the comment at the top of $0)" ;;
  esac
done
for s in ${only//,/ }; do
  [[ ",build,tests,sanitizer,bench,micro," == *",$s,"* ]] || fail "--only: unknown step '$s' (build,tests,sanitizer,bench,micro)"
done
[[ "$deadline" =~ ^[0-9]+$ ]] || fail "--deadline takes whole seconds, not '$deadline'"
wanted() { [[ ",$only," == *",$1,"* ]]; }

command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || fail "no NVIDIA GPU visible (nvidia-smi -L)"
nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[[ -x "$nvcc" ]] || fail "nvcc not found (set CUDACXX)"
device=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
commit=${LLMDION_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
jobs=${JOBS:-$(nproc)}
log_dir=$root/build-gpu/logs
data=/tmp/llmdion_gpu_check_data  # synthetic shards and short runs
rm -rf "$log_dir" "$data"
mkdir -p "$log_dir" "$data"
[[ -z "$copy_dir" ]] || mkdir -p "$copy_dir" || fail "cannot create --out $copy_dir"
started=$(date +%s)
rows=()
# The results file, rewritten after every step, so a check cut short still
# leaves what it measured: bench/results/gpu_check_<gpu>.md (and --out's copies).
mkdir -p bench/results
result=bench/results/gpu_check_$(echo "$device" | tr -c 'A-Za-z0-9\n' '_' | tr -s '_' | sed 's/_$//').md
write_results() {
  local tmp
  tmp=$(mktemp "$result.XXXXXX")
  {
    echo "# GPU check: $device"
    echo
    echo "Date $(date -u +%Y-%m-%d), commit $commit, $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1) driver," \
         "$("$nvcc" --version | grep -o 'release [0-9.]*'), $(( $(date +%s) - started )) s in all (scripts/gpu_check.sh --only $only)."
    echo
    echo "| step | result | details |"
    echo "|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    grep '^|' "$log_dir/bench_gpu.log" 2>/dev/null || echo "(no benchmark table: see build-gpu/logs/bench_gpu.log)"
    echo
    # The micro benchmark's rows; those of its unfinished CSV when it was cut short.
    local micro=$data/micro/micro_benchmark.csv
    [[ -f "$micro" ]] || micro=$micro.tmp
    if [[ -f "$micro" ]]; then
      echo "| micro benchmark: optimizer | d_model | ranks | optimizer step ms | bytes sent | step ms |"
      echo "|---|---|---|---|---|---|"
      tail -n +2 "$micro" | sed 's/^/| /; s/,/ | /g; s/$/ |/'
    fi
  } >"$tmp" && mv "$tmp" "$result"
  if [[ -n "$copy_dir" ]]; then
    cp "$result" "$copy_dir/gpu_check.md.tmp" && mv "$copy_dir/gpu_check.md.tmp" "$copy_dir/gpu_check.md"
    tar czf "$copy_dir/gpu_check_logs.tar.gz.tmp" -C "$root/build-gpu" logs 2>/dev/null &&
      mv "$copy_dir/gpu_check_logs.tar.gz.tmp" "$copy_dir/gpu_check_logs.tar.gz"
  fi
}
row() { rows+=("| $1 | $2 | $3 |"); echo "== $1: $2 ($3)"; write_results; }

# limited CAP CMD...: CMD under a timeout of CAP seconds or what is left of the
# deadline, whichever is less; exit 124 when it ran out, 125 when no time was left.
limited() {
  local cap=$1 left
  shift
  left=$(( deadline - ($(date +%s) - started) - 10 ))
  (( left < cap )) && cap=$left
  (( cap < 15 )) && return 125
  timeout --kill-after=10 "$cap" "$@"
}
# A step's outcome in words: passed/clean/ran, or why not.
outcome() {  # outcome STATUS WORD
  case $1 in
    0) echo "$2" ;;
    124|137) echo "FAILED (timed out)" ;;
    125) echo "not run (no time left)" ;;
    *) echo "FAILED (exit $1)" ;;
  esac
}

# Dependencies: Debian's packages unpacked under /tmp, when they are not installed here.
prefixes=()
if [[ -d "$deps_dir" ]] && ls "$deps_dir"/*.deb >/dev/null 2>&1; then
  unpacked=/tmp/llmdion_deps
  for f in "$deps_dir"/*.deb; do dpkg -x "$f" "$unpacked" || fail "cannot unpack $f"; done
  arch_lib=$unpacked/usr/lib/x86_64-linux-gnu
  export LD_LIBRARY_PATH=$arch_lib:$arch_lib/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  prefixes+=("$unpacked/usr")
fi
export LD_LIBRARY_PATH=$(dirname "$nvcc")/../lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# NCCL: the CUDA toolkit's, else one that came with Python's CUDA wheels (nvidia-nccl-*).
if [[ ! -e "$(dirname "$nvcc")/../include/nccl.h" ]]; then
  wheel_nccl=$(python3 -c 'import importlib.util as u; s = u.find_spec("nvidia.nccl"); print(list(s.submodule_search_locations)[0])' 2>/dev/null)
  if [[ -n "$wheel_nccl" && -e "$wheel_nccl/include/nccl.h" ]]; then
    prefixes+=("$wheel_nccl")
    export LD_LIBRARY_PATH=$wheel_nccl/lib:$LD_LIBRARY_PATH
  fi
fi
prefix_args=()
[[ ${#prefixes[@]} -gt 0 ]] && prefix_args=(-DCMAKE_PREFIX_PATH="$(IFS=';'; echo "${prefixes[*]}")")

# 1. Build for sm_90 (always: every later step needs it; --only picks among the rest).
t0=$(date +%s)
if limited 300 cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$nvcc" \
     -DCMAKE_CUDA_ARCHITECTURES=90 -DLLMDION_CUDA=ON -DLLMDION_MPI=OFF "${prefix_args[@]}" >"$log_dir/configure.log" 2>&1 &&
   limited 300 cmake --build build-gpu -j "$jobs" --target test_gpu train_gpt bench_gpu >"$log_dir/build.log" 2>&1; then
  nccl=$(grep -oE 'llm.dion: NCCL (/\S+|not found)' "$log_dir/configure.log" | tail -1 | sed 's/llm.dion: NCCL //')
  row build "ok" "sm_90, NCCL ${nccl:-?}, $(( $(date +%s) - t0 )) s"
else
  status=$?
  tail -40 "$log_dir/configure.log" "$log_dir/build.log"
  row build "$(outcome $status ok)" "$(( $(date +%s) - t0 )) s, logs in build-gpu/logs"
  fail "build failed (logs in $log_dir)"
fi

# 2. Every gpu test; here none may skip. A test that kills the binary (a crash,
# a CUDA error that aborts) or hangs it is named, and the binary runs again on
# the tests not yet run.
if wanted tests; then
  t0=$(date +%s)
  crashed=() status=0
  result_line='^\[ *(OK|FAILED|SKIPPED) *\] \S+ \([0-9]+ ms\)$'
  for pass in 1 2 3 4; do
    filter=()
    if [[ $pass -gt 1 ]]; then
      done_tests=$(cat "$log_dir"/test_gpu_[0-9].log | grep -E "$result_line" | sed -E 's/^\[[^]]*\] (\S+) .*/\1/')
      filter=("--gtest_filter=-$(printf '%s\n' $done_tests "${crashed[@]}" | paste -sd:)")
    fi
    limited 300 ./build-gpu/test_gpu "${filter[@]}" >"$log_dir/test_gpu_$pass.log" 2>&1
    status=$?
    # 0 (all passed) and 1 (some failed) are gtest's own; 125: no time was left.
    [[ $status -eq 0 || $status -eq 1 || $status -eq 125 ]] && break
    last=$(grep -oE '^\[ RUN      \] \S+' "$log_dir/test_gpu_$pass.log" | tail -1 | sed 's/^\[ RUN      \] //')
    [[ -n "$last" ]] || break
    crashed+=("$last")
  done
  cat "$log_dir"/test_gpu_[0-9].log >"$log_dir/test_gpu.log"
  count() { grep -cE "^\[ *$1 *\] \S+ \([0-9]+ ms\)$" "$log_dir/test_gpu.log"; }
  passed=$(count OK) skipped=$(count SKIPPED)
  failed=$(grep -E '^\[  FAILED  \] \S+ \([0-9]+ ms\)$' "$log_dir/test_gpu.log" | sed 's/\[  FAILED  \] //; s/ (.*//' | sort -u | tr '\n' ' ')
  grep -E 'Failure|Expected|Which is|relative|error' "$log_dir/test_gpu.log" | head -60
  verdict=passed
  if [[ -n "$failed" || ${#crashed[@]} -gt 0 || $skipped -gt 0 ]]; then verdict=FAILED
  elif [[ $status -ne 0 ]]; then verdict=$(outcome $status passed)
  fi
  row "gpu tests" "$verdict" "$passed passed, $skipped skipped, failed: ${failed:-none}, crashed or hung: ${crashed[*]:-none}, $(( $(date +%s) - t0 )) s"
  # The ten slowest, to size later checks.
  grep -hE '^\[       OK \] \S+ \([0-9]+ ms\)$' "$log_dir/test_gpu.log" | sed -E 's/.*\] (\S+) \(([0-9]+) ms\)/\2 ms \1/' |
    sort -rn | head -10 >"$log_dir/test_gpu_slowest.txt"
fi

# Synthetic shards and a tiny config for the short trainings below.
python3 - "$data" <<'EOF' || fail "cannot write the synthetic shards"
import array, random, sys
random.seed(1)
for name in ("check_val_000000.bin", "check_train_000001.bin"):
    tokens = array.array("H", (random.randrange(256) for _ in range(8192)))
    header = array.array("i", [20240520, 1, len(tokens)] + [0] * 253)
    with open(f"{sys.argv[1]}/{name}", "wb") as f:
        header.tofile(f)
        tokens.tofile(f)
EOF
cat >"$data/tiny.yaml" <<EOF
run: {device: cuda}
model: {n_layer: 2, n_head: 2, d_model: 64, seq_len: 64, vocab_size: 256}
data: {train: $data/check_train_*.bin, val: $data/check_val_*.bin}
train: {micro_batch: 2, batch_tokens: 128, steps: 2, eval_every: 2, eval_tokens: 128, ckpt_every: 0}
EOF

# 3. A short training under compute-sanitizer.
if wanted sanitizer; then
  sanitizer=$(command -v compute-sanitizer || echo "$(dirname "$nvcc")/compute-sanitizer")
  # GPT-2 with AdamW, and the paper's block (RMSNorm, RoPE, qk-norm, relu^2) with Dion2 on bf16 products.
  runs=("gpt2_adamw|" "paper_dion2|--set model.arch=paper --set optim.matrix=dion2 --set optim.ortho_precision=bf16")
  for tool in memcheck racecheck; do
    for run in "${runs[@]}"; do
      name=${run%%|*}
      read -r -a sets <<<"${run#*|}"
      t0=$(date +%s)
      rm -rf "$data/out_${tool}_$name"
      limited 120 "$sanitizer" --tool "$tool" --error-exitcode 3 ./build-gpu/train_gpt --config "$data/tiny.yaml" \
        --set run.out_dir="$data/out_${tool}_$name" "${sets[@]}" >"$log_dir/sanitizer_${tool}_$name.log" 2>&1
      status=$?
      summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log_dir/sanitizer_${tool}_$name.log" | tail -1)
      [[ $status -ne 0 ]] && tail -30 "$log_dir/sanitizer_${tool}_$name.log"
      row "compute-sanitizer $tool, $name" "$(outcome $status clean)" \
          "2 training steps, L2 d64 T64: ${summary:-no summary}, $(( $(date +%s) - t0 )) s"
    done
  done
fi

# 4. Benchmarks: bench_gpu, and the paper's micro benchmark on this one GPU.
if wanted bench; then
  t0=$(date +%s)
  limited 180 ./build-gpu/bench_gpu "${BENCH_BATCH:-16}" 10 >"$log_dir/bench_gpu.log" 2>&1
  status=$?
  cat "$log_dir/bench_gpu.log"
  row "bench_gpu" "$(outcome $status ran)" "$(( $(date +%s) - t0 )) s"
fi
if wanted micro; then
  t0=$(date +%s)
  limited 150 env PYTHON=python3 bash scripts/micro_benchmark.sh "$data/micro" --ranks 1 --widths "1024 4096" --steps 21 \
    --train-gpt build-gpu/train_gpt --set run.device=cuda --set optim.ortho_precision=bf16 \
    >"$log_dir/micro_benchmark.log" 2>&1
  status=$?
  tail -5 "$log_dir/micro_benchmark.log"
  row "micro benchmark" "$(outcome $status ran)" \
      "4-layer GPT, 1 rank, bf16 products, optimizer step ms (mean of the last 20 of 21), $(( $(date +%s) - t0 )) s"
fi

write_results

echo
cat "$result"
echo "gpu_check: written to $result"
grep -qE 'FAILED|not run' "$result" && exit 1
exit 0
