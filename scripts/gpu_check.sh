#!/usr/bin/env bash
# The GPU check, in one call on a machine with an NVIDIA GPU, CUDA, cuBLAS and
# CMake: builds for sm_90, runs every gpu test, a short training under
# compute-sanitizer (memcheck and racecheck) and the GPU benchmarks (bench_gpu
# and the paper's micro benchmark on one rank), then
# prints one table and writes it, with the device, date and commit, to
# bench/results/gpu_check_<device>.md.
#
#   bash scripts/gpu_check.sh --fetch   where apt works: downloads the Debian
#                                       packages the build needs into .gpu_deps/
#   bash scripts/gpu_check.sh           on the GPU machine
#
# A GPU machine without our Debian packages (yaml-cpp, spdlog, fmt, CLI11,
# OpenBLAS, GoogleTest) and without internet gets them from .gpu_deps/,
# unpacked under /tmp (never over /). The build leaves MPI out: one GPU, one process.
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
started=$(date +%s)
rows=()
# The results file, rewritten after every step, so a check cut short still
# leaves what it measured: bench/results/gpu_check_<gpu>.md.
mkdir -p bench/results
result=bench/results/gpu_check_$(echo "$device" | tr -c 'A-Za-z0-9\n' '_' | tr -s '_' | sed 's/_$//').md
write_results() {
  local tmp
  tmp=$(mktemp "$result.XXXXXX")
  {
    echo "# GPU check: $device"
    echo
    echo "Date $(date -u +%Y-%m-%d), commit $commit, $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1) driver," \
         "$("$nvcc" --version | grep -o 'release [0-9.]*'), $(( $(date +%s) - started )) s in all (scripts/gpu_check.sh)."
    echo
    echo "| step | result | details |"
    echo "|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    grep '^|' "$log_dir/bench_gpu.log" 2>/dev/null || echo "(no benchmark table: see build-gpu/logs/bench_gpu.log)"
    echo
    if [[ -f "$data/micro/micro_benchmark.csv" ]]; then
      echo "| micro benchmark: optimizer | d_model | ranks | optimizer step ms | bytes sent |"
      echo "|---|---|---|---|---|"
      tail -n +2 "$data/micro/micro_benchmark.csv" | sed 's/^/| /; s/,/ | /g; s/$/ |/'
    fi
  } >"$tmp" && mv "$tmp" "$result"
}
row() { rows+=("| $1 | $2 | $3 |"); echo "== $1: $2 ($3)"; write_results; }

# Dependencies: Debian's packages unpacked under /tmp, when they are not installed here.
prefix_args=()
if [[ -d "$deps_dir" ]] && ls "$deps_dir"/*.deb >/dev/null 2>&1; then
  unpacked=/tmp/llmdion_deps
  for f in "$deps_dir"/*.deb; do dpkg -x "$f" "$unpacked" || fail "cannot unpack $f"; done
  arch_lib=$unpacked/usr/lib/x86_64-linux-gnu
  export LD_LIBRARY_PATH=$arch_lib:$arch_lib/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  prefix_args=(-DCMAKE_PREFIX_PATH="$unpacked/usr")
fi
export LD_LIBRARY_PATH=$(dirname "$nvcc")/../lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# 1. Build for sm_90.
t0=$(date +%s)
if cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES=90 \
     -DLLMDION_CUDA=ON -DLLMDION_MPI=OFF "${prefix_args[@]}" >"$log_dir/configure.log" 2>&1 &&
   cmake --build build-gpu -j "$jobs" --target test_gpu train_gpt bench_gpu >"$log_dir/build.log" 2>&1; then
  row build "ok" "sm_90, $(( $(date +%s) - t0 )) s"
else
  tail -40 "$log_dir/configure.log" "$log_dir/build.log"
  fail "build failed (logs in $log_dir)"
fi

# 2. Every gpu test; here none may skip.
t0=$(date +%s)
./build-gpu/test_gpu >"$log_dir/test_gpu.log" 2>&1
status=$?
count() { grep -oE "^\[  $1 *\] [0-9]+ test" "$log_dir/test_gpu.log" | grep -oE '[0-9]+' | tail -1; }
passed=$(count PASSED) skipped=$(count SKIPPED) failed=$(grep '^\[  FAILED  \] [A-Z]' "$log_dir/test_gpu.log" |
                                                   sed 's/\[  FAILED  \] //; s/ (.*//' | sort -u | tr '\n' ' ')
grep -E 'Failure|Expected|Which is|relative|error' "$log_dir/test_gpu.log" | head -60
row "gpu tests" "$( [[ $status -eq 0 && ${skipped:-0} -eq 0 ]] && echo passed || echo FAILED)" \
    "exit $status, ${passed:-0} passed, ${skipped:-0} skipped, failed: ${failed:-none}, $(( $(date +%s) - t0 )) s"

# 3. A short training under compute-sanitizer, on synthetic shards.
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
sanitizer=$(command -v compute-sanitizer || echo "$(dirname "$nvcc")/compute-sanitizer")
# GPT-2 with AdamW, and the paper's block (RMSNorm, RoPE, qk-norm, relu^2) with Dion2 on bf16 products.
runs=("gpt2_adamw|" "paper_dion2|--set model.arch=paper --set optim.matrix=dion2 --set optim.ortho_precision=bf16")
for tool in memcheck racecheck; do
  for run in "${runs[@]}"; do
    name=${run%%|*}
    read -r -a sets <<<"${run#*|}"
    t0=$(date +%s)
    rm -rf "$data/out_${tool}_$name"
    "$sanitizer" --tool "$tool" --error-exitcode 3 ./build-gpu/train_gpt --config "$data/tiny.yaml" \
      --set run.out_dir="$data/out_${tool}_$name" "${sets[@]}" >"$log_dir/sanitizer_${tool}_$name.log" 2>&1
    status=$?
    summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log_dir/sanitizer_${tool}_$name.log" | tail -1)
    [[ $status -ne 0 ]] && tail -30 "$log_dir/sanitizer_${tool}_$name.log"
    row "compute-sanitizer $tool, $name" "$( [[ $status -eq 0 ]] && echo clean || echo "FAILED (exit $status)")" \
        "2 training steps, L2 d64 T64: ${summary:-no summary}, $(( $(date +%s) - t0 )) s"
  done
done

# 4. Benchmarks: bench_gpu, and the paper's micro benchmark on this one GPU.
t0=$(date +%s)
./build-gpu/bench_gpu "${BENCH_BATCH:-16}" 10 >"$log_dir/bench_gpu.log" 2>&1
status=$?
cat "$log_dir/bench_gpu.log"
row "bench_gpu" "$( [[ $status -eq 0 ]] && echo ran || echo "FAILED (exit $status)")" "$(( $(date +%s) - t0 )) s"
t0=$(date +%s)
PYTHON=python3 bash scripts/micro_benchmark.sh "$data/micro" --ranks 1 --widths "1024 4096" --steps 21 \
  --train-gpt build-gpu/train_gpt --set run.device=cuda --set optim.ortho_precision=bf16 \
  --set data.train="$data/check_train_*.bin" --set data.val="$data/check_val_*.bin" --set train.sample_every=0 \
  >"$log_dir/micro_benchmark.log" 2>&1
status=$?
tail -5 "$log_dir/micro_benchmark.log"
row "micro benchmark" "$( [[ $status -eq 0 ]] && echo ran || echo "FAILED (exit $status)")" \
    "4-layer GPT, 1 rank, bf16 products, optimizer step ms (mean of the last 20 of 21), $(( $(date +%s) - t0 )) s"

write_results

echo
cat "$result"
echo "gpu_check: written to $result"
grep -q 'FAILED' "$result" && exit 1
exit 0
