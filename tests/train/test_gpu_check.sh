#!/usr/bin/env bash
# scripts/gpu_check.sh's flow without a GPU (about 45 s): stand-ins for
# nvidia-smi, nvcc (in a toolkit folder of empty libraries), cmake, the built
# binaries and compute-sanitizer, in a scratch copy of the scripts. Checks that
# every step is reported; a passing check exits 0 and compares Dion2 with Muon;
# a step without time left is "not run" and one stopped by its timeout "cut
# short", and neither fails the check; failing, crashing, hanging and skipping
# tests, sanitizer errors, a crashing benchmark and a failed build do; a missing
# cuBLAS library is named with where it was looked for, a versioned-only one is
# linked; make stands in for an absent ninja; --out keeps its copies.
#   bash tests/train/test_gpu_check.sh ROOT
set -euo pipefail
root=$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" /tmp/llmdion_gpu_check_data /tmp/llmdion_cuda_links' EXIT
fail() { echo "FAIL: $*"; exit 1; }

tree=$tmp/tree stand=$tmp/bin fake=$tmp/fake tk=$tmp/cuda
mkdir -p "$tree/scripts" "$tree/configs" "$stand" "$fake" "$tk/bin" "$tk/lib64"
cp "$root/scripts/gpu_check.sh" "$root/scripts/micro_benchmark.sh" "$tree/scripts/"
cp "$root/configs/sotu_dion2.yaml" "$tree/configs/"
for lib in cudart cublas cublasLt cusolver; do : >"$tk/lib64/lib$lib.so"; done

cat >"$stand/nvidia-smi" <<'EOF'
#!/usr/bin/env bash
case "$*" in
  -L) echo "GPU 0: NVIDIA H200 (UUID: GPU-0)" ;;
  *name*) echo "NVIDIA H200" ;;
  *driver_version*) echo "570.00" ;;
esac
EOF
cat >"$tk/bin/nvcc" <<'EOF'
#!/usr/bin/env bash
echo "Cuda compilation tools, release 13.0, V13.0.88"
EOF
# cmake: records its arguments; configures a cache naming the generator;
# "builds" the asked targets by copying the stand-ins (FAKE_BUILD_FAIL: fails).
cat >"$stand/cmake" <<EOF
#!/usr/bin/env bash
echo "cmake \$*" >>"$tmp/cmake_args"
if [[ \$1 == --build ]]; then
  [[ -z "\${FAKE_BUILD_FAIL:-}" ]] || { echo "error: the stand-in build fails"; exit 2; }
  dir=\$2 targets=0
  for a in "\$@"; do
    [[ \$targets -eq 1 ]] && cp "$fake/\$a" "\$dir/\$a"
    [[ \$a == --target ]] && targets=1
  done
  exit 0
fi
while [[ \$# -gt 0 ]]; do
  case \$1 in -B) dir=\$2; shift ;; -G) gen=\$2; shift ;; esac
  shift
done
mkdir -p "\$dir"
echo "CMAKE_GENERATOR:INTERNAL=\$gen" >"\$dir/CMakeCache.txt"
echo "-- llm.dion: NCCL not found: cuda runs are one process"
EOF
# compute-sanitizer: runs the program; FAKE_SANITIZER=errors reports an error,
# FAKE_SANITIZER_SLEEP=S takes S seconds first.
cat >"$stand/compute-sanitizer" <<'EOF'
#!/usr/bin/env bash
tool=$2 code=$4
shift 4
echo "========= COMPUTE-SANITIZER"
sleep "${FAKE_SANITIZER_SLEEP:-0}"
"$@" || exit $?
if [[ "${FAKE_SANITIZER:-}" == errors ]]; then
  echo "========= Invalid __global__ read of size 4 bytes"
  echo "========= ERROR SUMMARY: 1 error"
  exit "$code"
fi
[[ $tool == racecheck ]] && echo "========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)" ||
  echo "========= ERROR SUMMARY: 0 errors"
EOF
# test_gpu: four tests in gtest's words; FAKE_TESTS picks what Kernels.B or
# Model.C do: pass, fail, skip, crash, hang (or slow: Kernels.B runs 1000 s).
cat >"$fake/test_gpu" <<'EOF'
#!/usr/bin/env bash
if [[ "${1:-}" == --gtest_list_tests ]]; then printf 'Kernels.\n  A\n  B\nModel.\n  C\nTraining.\n  D\n'; exit 0; fi
excluded=":"
[[ "${1:-}" == --gtest_filter=-* ]] && excluded=":${1#--gtest_filter=-}:"
status=0
for t in Kernels.A Kernels.B Model.C Training.D; do
  [[ "$excluded" == *":$t:"* ]] && continue
  echo "[ RUN      ] $t"
  case "${FAKE_TESTS:-pass}:$t" in
    crash:Kernels.B) kill -SEGV $$ ;;
    hang:Kernels.B|slow:Kernels.B) sleep 1000 ;;
    fail:Model.C) echo "test.cpp:1: Failure"; echo "[  FAILED  ] $t (3 ms)"; status=1; continue ;;
    skip:Model.C) echo "[  SKIPPED ] $t (0 ms)"; continue ;;
  esac
  echo "[       OK ] $t (5 ms)"
done
exit $status
EOF
# train_gpt: a loss.csv of 21 steps, the optimizer's time by optimizer and width.
cat >"$fake/train_gpt" <<'EOF'
#!/usr/bin/env bash
out="" opt=adamw d=64
while [[ $# -gt 0 ]]; do
  case $2 in run.out_dir=*) out=${2#*=} ;; optim.matrix=*) opt=${2#*=} ;; model.d_model=*) d=${2#*=} ;; esac
  shift
done
mkdir -p "$out"
ms=$(( d / 64 ))
[[ $opt != dion2 ]] || ms=$(( d / 256 ))
{ echo "step,tokens,lr,train_loss,val_loss,grad_norm,step_ms,opt_ms,tokens_per_s,comm_bytes"
  for s in $(seq 0 20); do echo "$s,64,0.01,5.5,,1.0,$(( ms + 10 )),$ms,1000,0"; done; } >"$out/loss.csv"
EOF
cat >"$fake/bench_gpu" <<'EOF'
#!/usr/bin/env bash
echo "| model | tokens/s | MFU |"
echo "|---|---|---|"
echo "| GPT-2 124M | 400000 | 40% |"
[[ "${FAKE_BENCH:-}" != crash ]] || kill -ABRT $$
EOF
chmod +x "$stand"/* "$fake"/* "$tk/bin/nvcc"

export LLMDION_COMMIT=flowtest CUDACXX=$tk/bin/nvcc PYTHON=python3
path=$stand:$PATH
results=$tree/bench/results/gpu_check_NVIDIA_H200.md
# check NAME EXPECTED_STATUS ARGS...: runs the check, its output in $tmp/NAME.log.
check() {
  local name=$1 want=$2 status=0
  shift 2
  : >"$tmp/cmake_args"
  PATH=${run_path:-$path} bash "$tree/scripts/gpu_check.sh" "$@" >"$tmp/$name.log" 2>&1 || status=$?
  [[ $status -eq $want ]] || fail "$name: exit $status, not $want: $(tail -30 "$tmp/$name.log")"
}
has() {  # has NAME PATTERN: the table of the last run has a line matching PATTERN
  grep -qE "$2" "$results" || fail "$1: no line like '$2' in: $(cat "$results")"
}
steps_reported() {  # every step has its row
  local s
  for s in "CUDA libraries" build "gpu tests" "compute-sanitizer memcheck" "compute-sanitizer racecheck" bench_gpu "micro benchmark"; do
    has "$1" "^\| $s \| "
  done
}

# 1. All pass: exit 0, every step's row, Dion2 over Muon, --out's copies.
check pass 0 --out "$tmp/copy"
steps_reported pass
has pass '^\| CUDA libraries \| found \| libcudart.so, libcublas.so, libcublasLt.so, libcusolver.so in '
has pass '^\| build \| ok \| sm_90, Ninja, test_gpu train_gpt bench_gpu, NCCL not found'
has pass '^\| gpu tests \| passed \| 4 passed, 0 skipped, failed: none, crashed or hung: none, 4 of 4 run'
has pass '^\| compute-sanitizer memcheck \| clean \| .*ERROR SUMMARY: 0 errors'
has pass '^\| compute-sanitizer racecheck \| clean \| .*RACECHECK SUMMARY: 0 hazards'
has pass '^\| bench_gpu \| ran \|'
has pass '^\| GPT-2 124M \| 400000 \| 40% \|'
has pass '^\| micro benchmark \| ran'
has pass '^\| dion2_alpha0.25 \| 2048 \| 1 \| 8.000 \|'
has pass "^Dion2 alpha 0.25 optimizer step over Muon's at d_model 1024: 0.25x"
has pass "^Dion2 alpha 0.25 optimizer step over Muon's at d_model 2048: 0.25x"
grep -q -- '-G Ninja' "$tmp/cmake_args" || fail "pass: not configured with Ninja: $(cat "$tmp/cmake_args")"
cmp -s "$results" "$tmp/copy/gpu_check.md" || fail "pass: --out's table differs"
# (the listing is read whole: grep -q stopping early would fail tar under pipefail)
kept=$(tar tzf "$tmp/copy/gpu_check_logs.tar.gz") || fail "pass: --out's logs do not list"
grep -q logs/test_gpu.log <<<"$kept" || fail "pass: --out's logs lack test_gpu.log"

# 2. No time left: the tests run until their time runs out (cut short), then
# memcheck has none (not run); neither fails the check; --only builds only what it needs.
FAKE_TESTS=slow TEST_HANG_S=100 check no_time 0 --only tests,memcheck --deadline 27
steps_reported no_time
has no_time '^\| gpu tests \| cut short \(time ran out\) \| 1 passed, .* 1 of 4 run'
has no_time '^\| compute-sanitizer memcheck \| not run \(no time left\) \|'
has no_time '^\| compute-sanitizer racecheck \| not run \(not in --only\) \|'
has no_time '^\| bench_gpu \| not run \(not in --only\) \|'
has no_time '^\| build \| ok \| sm_90, Ninja, test_gpu train_gpt, '

# 3. Faults: a failing test, sanitizer errors and a crashing benchmark exit 1.
FAKE_TESTS=fail FAKE_SANITIZER=errors FAKE_BENCH=crash check faults 1 --only tests,sanitizer,bench
has faults '^\| gpu tests \| FAILED \| 3 passed, 0 skipped, failed: Model.C, '
has faults '^\| compute-sanitizer memcheck \| ERRORS \| .*ERROR SUMMARY: 1 error'
has faults '^\| compute-sanitizer racecheck \| ERRORS \|'
has faults '^\| bench_gpu \| FAILED \(exit 134\) \|'
grep -q "gpu_check: FAILED: tests memcheck racecheck bench" "$tmp/faults.log" || fail "faults: not named: $(tail -3 "$tmp/faults.log")"
FAKE_TESTS=skip check skipped 1 --only tests
has skipped '^\| gpu tests \| FAILED \| 3 passed, 1 skipped, '

# 4. A crash and a hang are named, and the tests after them run.
FAKE_TESTS=crash check crash 1 --only tests
has crash '^\| gpu tests \| FAILED \| 3 passed, .*crashed or hung: Kernels.B \(exit 139\), 3 of 4 run'
FAKE_TESTS=hang TEST_HANG_S=2 check hang 1 --only tests
has hang '^\| gpu tests \| FAILED \| 3 passed, .*crashed or hung: Kernels.B \(hung 2 s\), 3 of 4 run'

# 5. A failed build: named, every later step not run, exit 1.
FAKE_BUILD_FAIL=1 check build_fails 1
steps_reported build_fails
has build_fails '^\| build \| FAILED \(exit 2\) \|'
has build_fails '^\| micro benchmark \| not run \(build failed\) \|'

# 6. cuBLAS missing: named, with where it was looked for; versioned only: linked.
rm "$tk/lib64/libcublas.so"
check no_cublas 0 --only tests
has no_cublas "^\| CUDA libraries \| MISSING libcublas.so \| looked in $tk/lib64 \|"
grep -q "gpu_check: missing from the CUDA toolkit: libcublas.so (looked in $tk/lib64)" "$tmp/no_cublas.log" ||
  fail "no_cublas: not in the log: $(head -5 "$tmp/no_cublas.log")"
: >"$tk/lib64/libcublas.so.13"
check versioned 0 --only tests
has versioned "^\| CUDA libraries \| found \(versioned only\) \| linked under /tmp/llmdion_cuda_links: libcublas.so -> $tk/lib64/libcublas.so.13"
grep -q -- "-DCMAKE_LIBRARY_PATH=/tmp/llmdion_cuda_links" "$tmp/cmake_args" || fail "versioned: the links not given to cmake"
[[ -L /tmp/llmdion_cuda_links/libcublas.so ]] || fail "versioned: no link"

# 7. Without ninja: make, said so; a build folder of the other generator starts again.
mkdir "$tmp/usrbin"
ln -s /usr/bin/* "$tmp/usrbin/"
rm -f "$tmp/usrbin/ninja"
run_path=$stand:$tmp/usrbin check make 0 --only tests
grep -q "gpu_check: ninja not found: building with make" "$tmp/make.log" || fail "make: not said"
grep -q -- '-G Unix Makefiles' "$tmp/cmake_args" || fail "make: not configured with make: $(cat "$tmp/cmake_args")"
has make '^\| build \| ok \| sm_90, Unix Makefiles, '
echo "gpu_check: every step reported; pass, no time left, cut short, faults, crash, hang, failed build," \
     "missing and versioned-only cuBLAS, make without ninja"
