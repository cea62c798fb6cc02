#!/usr/bin/env bash
# The GPU check, in one call on a machine with an NVIDIA GPU, the CUDA toolkit
# and CMake (with Ninja; make where ninja is absent). Its steps, in order of
# value, each under a timeout of its own cap or what is left of --deadline:
#   CUDA libraries  libcudart.so, libcublas.so, libcublasLt.so, libcusolver.so in
#                   the toolkit's lib64, lib and targets/*/lib; one missing is named with
#                   where it was looked for (with only its versioned file there, a
#                   link to that, under /tmp, is what the build finds)
#   build      180 s  configure and build for sm_90 (always; the targets the other
#                     steps need)
#   tests      150 s  every gpu test in test_gpu; none may skip
#   memcheck    75 s  compute-sanitizer memcheck: 2 training steps of the paper's
#                     block (RMSNorm, RoPE, qk-norm, relu^2) with Dion2 on bf16 products
#   racecheck   90 s  compute-sanitizer racecheck: 2 training steps of GPT-2's block
#                     (LayerNorm, GELU, biases, learned positions) with Dion2
#   bench      120 s  bench_gpu (GPT-2 124M and the paper 300M: tokens/s, MFU;
#                     optimizer steps; Newton-Schulz; attention)
#   micro       60 s  the paper's micro benchmark on one rank: Muon and Dion2 alpha
#                     0.25 at d_model 1024 and 2048, and Dion2's optimizer step over Muon's
# The build and the three checks fit the default deadline at their caps; the
# benchmarks get what is left. It prints one table and writes it, with the
# device, date and commit, to bench/results/gpu_check_<device>.md, rewritten
# after every step, so a check cut short keeps what it measured.
#
#   bash scripts/gpu_check.sh --fetch   where apt works: downloads the Debian
#                                       packages the build needs into .gpu_deps/
#   bash scripts/gpu_check.sh [--out DIR] [--only STEPS] [--deadline SECONDS]
#                                       on the GPU machine
#
#   --out DIR       also keep DIR/gpu_check.md and DIR/gpu_check_logs.tar.gz up to
#                   date after every step (for a machine whose tree is not kept)
#   --only STEPS    a comma list of build,tests,memcheck,racecheck,bench,micro
#                   (sanitizer: memcheck and racecheck; default all; the build runs
#                   always); the others are reported as not run
#   --deadline S    the whole check ends within S seconds (default 540); a step
#                   with under 15 s left is reported as not run (no time left), and
#                   one its timeout stops as cut short
#
# Exit status 1 only for what shows a fault: the build failing or outlasting
# its cap, a gpu test failing, skipping, crashing or hanging, compute-sanitizer
# reporting errors or its training failing, a benchmark crashing. The steps
# after the build not run or cut short for time are reported so, and leave it 0.
# A GPU machine without our Debian packages (yaml-cpp, spdlog, fmt, CLI11,
# OpenBLAS, GoogleTest) and without internet gets them from .gpu_deps/,
# unpacked under /tmp (never over /). The build leaves MPI out: one GPU, one
# process. NCCL: the toolkit's, else Python's CUDA wheel's (nvidia-nccl-*).
# A test that crashes test_gpu, or runs TEST_HANG_S seconds (default 60)
# without finishing, is named, and test_gpu runs again on the tests not yet run.
# Environment: LLMDION_COMMIT (the commit, when .git is absent), JOBS,
# BENCH_BATCH (GPT-2 124M micro-batch, default 16), TEST_HANG_S.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
deps_dir=$root/.gpu_deps
packages=(libyaml-cpp-dev libyaml-cpp0.7 libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libcli11-dev libgtest-dev
          libopenblas-openmp-dev libopenblas0-openmp libopenblas-dev libgfortran5 libquadmath0 libxxhash-dev libxxhash0)

if [[ "${1:-}" == "--fetch" ]]; then
  mkdir -p "$deps_dir"
  (cd "$deps_dir" && apt-get download "${packages[@]}") || { echo "gpu_check: apt-get download failed" >&2; exit 1; }
  echo "gpu_check: $(ls "$deps_dir"/*.deb | wc -l) packages in $deps_dir ($(du -sh "$deps_dir" | cut -f1))"
  exit 0
fi

fail() { echo "gpu_check: $*" >&2; exit 1; }
steps_all="tests,memcheck,racecheck,bench,micro"
copy_dir="" only="build,$steps_all" deadline=540
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) [[ $# -ge 2 ]] || fail "--out takes a folder"; copy_dir=$2; shift 2 ;;
    --only) [[ $# -ge 2 ]] || fail "--only takes a comma list of steps"; only=$2; shift 2 ;;
    --deadline) [[ $# -ge 2 ]] || fail "--deadline takes seconds"; deadline=$2; shift 2 ;;
    *) fail "unknown argument '$1' (see the comment at the top of $0)" ;;
  esac
done
only=${only//sanitizer/memcheck,racecheck}
for s in ${only//,/ }; do
  [[ ",build,$steps_all," == *",$s,"* ]] || fail "--only: unknown step '$s' (build,$steps_all or sanitizer)"
done
[[ "$deadline" =~ ^[0-9]+$ ]] || fail "--deadline takes whole seconds, not '$deadline'"
wanted() { [[ ",$only," == *",$1,"* ]]; }
hang_s=${TEST_HANG_S:-60}
[[ "$hang_s" =~ ^[0-9]+$ ]] || fail "TEST_HANG_S takes whole seconds, not '$hang_s'"

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  fail "no NVIDIA GPU visible (nvidia-smi -L)"
fi
nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[[ -x "$nvcc" ]] || fail "nvcc not found at $nvcc (set CUDACXX)"
cuda_root=$(cd "$(dirname "$nvcc")/.." && pwd)
device=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
cuda_release=$("$nvcc" --version | grep -o 'release [0-9.]*' || echo "nvcc release unknown")
commit=${LLMDION_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
jobs=${JOBS:-$(nproc)}
log_dir=$root/build-gpu/logs
data=/tmp/llmdion_gpu_check_data  # synthetic shards and short runs
rm -rf "$log_dir" "$data"
mkdir -p "$log_dir" "$data"
[[ -z "$copy_dir" ]] || mkdir -p "$copy_dir" || fail "cannot create --out $copy_dir"
started=$(date +%s)
rows=() failures=()
# The results file, rewritten after every step, so a check cut short still
# leaves what it measured: bench/results/gpu_check_<gpu>.md (and --out's copies).
mkdir -p bench/results
result=bench/results/gpu_check_$(echo "$device" | tr -c 'A-Za-z0-9\n' '_' | tr -s '_' | sed 's/_$//').md
micro_csv=$data/micro/micro_benchmark.csv
write_results() {
  local tmp micro
  tmp=$(mktemp "$result.XXXXXX")
  {
    echo "# GPU check: $device"
    echo
    echo "Date $(date -u +%Y-%m-%d), commit $commit, $driver driver, $cuda_release," \
         "$(( $(date +%s) - started )) s in all (scripts/gpu_check.sh --only $only --deadline $deadline)."
    echo
    echo "| step | result | details |"
    echo "|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    grep '^|' "$log_dir/bench_gpu.log" 2>/dev/null || echo "(no benchmark table: see build-gpu/logs/bench_gpu.log)"
    echo
    # The micro benchmark's rows; those of its unfinished CSV when it was cut short.
    micro=$micro_csv
    [[ -f "$micro" ]] || micro=$micro.tmp
    if [[ -f "$micro" ]]; then
      echo "| micro benchmark: optimizer | d_model | ranks | optimizer step ms | bytes sent | step ms |"
      echo "|---|---|---|---|---|---|"
      tail -n +2 "$micro" | sed 's/^/| /; s/,/ | /g; s/$/ |/'
      echo
      awk -F, '$1 == "muon" { muon[$2] = $4 } $1 == "dion2_alpha0.25" { dion2[$2] = $4 }
               END { for (d in dion2) if (d in muon && muon[d] > 0)
                       printf "Dion2 alpha 0.25 optimizer step over Muon'"'"'s at d_model %s: %.2fx (%.3f ms / %.3f ms)\n",
                              d, dion2[d] / muon[d], dion2[d], muon[d] }' "$micro" | sort -t' ' -k10n
    fi
  } >"$tmp"
  mv "$tmp" "$result"
  if [[ -n "$copy_dir" ]]; then
    cp "$result" "$copy_dir/gpu_check.md.tmp" && mv "$copy_dir/gpu_check.md.tmp" "$copy_dir/gpu_check.md"
    if tar czf "$copy_dir/gpu_check_logs.tar.gz.tmp" -C "$root/build-gpu" logs 2>/dev/null; then
      mv "$copy_dir/gpu_check_logs.tar.gz.tmp" "$copy_dir/gpu_check_logs.tar.gz"
    fi
  fi
}
# row STEP RESULT DETAILS: one line of the table, printed and written at once.
row() { rows+=("| $1 | $2 | $3 |"); echo "== $1: $2 ($3)"; write_results; }
# failed STEP: a fault, which makes the exit status 1.
failed() { failures+=("$1"); }

# Time: every step gets its cap or what is left of the deadline (less 10 s to
# write the table), whichever is less; one with under 15 s is not run.
step_end=0
# step_begin CAP: starts a step's clock; false when no time is left for it.
step_begin() {
  local now end
  now=$(date +%s)
  end=$(( started + deadline - 10 ))
  step_end=$(( now + $1 < end ? now + $1 : end ))
  step_t0=$now
  (( step_end - now >= 15 ))
}
step_s() { echo "$(( $(date +%s) - step_t0 )) s"; }
# limited CMD...: CMD under a timeout of what is left of the step; 124 (or 137)
# when that ran out, 125 when under 15 s was left.
limited() {
  local left=$(( step_end - $(date +%s) ))
  (( left >= 15 )) || return 125
  timeout --kill-after=10 "$left" "$@"
}
# A step's outcome in words from its exit status: WORD when it ran through.
outcome() {  # outcome STATUS WORD
  case $1 in
    0) echo "$2" ;;
    124|137) echo "cut short (time ran out)" ;;
    125) echo "not run (no time left)" ;;
    *) echo "FAILED (exit $1)" ;;
  esac
}
# A step that ended with STATUS: a fault unless it ran through or ran out of time.
judge() {  # judge STEP STATUS
  case $2 in 0|124|125|137) ;; *) failed "$1" ;; esac
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
export LD_LIBRARY_PATH=$cuda_root/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# NCCL: the CUDA toolkit's, else one that came with Python's CUDA wheels (nvidia-nccl-*).
if [[ ! -e "$cuda_root/include/nccl.h" ]]; then
  wheel_nccl=$(python3 -c 'import importlib.util as u; s = u.find_spec("nvidia.nccl"); print(list(s.submodule_search_locations)[0])' 2>/dev/null || true)
  if [[ -n "$wheel_nccl" && -e "$wheel_nccl/include/nccl.h" ]]; then
    prefixes+=("$wheel_nccl")
    export LD_LIBRARY_PATH=$wheel_nccl/lib:$LD_LIBRARY_PATH
  fi
fi

# The CUDA libraries the build links by their unversioned names (CMake's
# CUDA::cudart, cublas, cublasLt, cusolver), looked for where CMake's
# FindCUDAToolkit looks in the toolkit. With only a versioned file
# (libcublas.so.13), a link to it under /tmp is put where CMake finds it first.
lib_dirs=()
for d in "$cuda_root"/lib64 "$cuda_root"/lib "$cuda_root"/targets/*/lib; do
  if [[ -d "$d" ]]; then lib_dirs+=("$d"); fi
done
[[ ${#lib_dirs[@]} -gt 0 ]] || lib_dirs=("$cuda_root/lib64")
links=/tmp/llmdion_cuda_links
rm -rf "$links"
missing=() linked=() found_in=()
for lib in cudart cublas cublasLt cusolver; do
  here="" versioned=""
  for d in "${lib_dirs[@]}"; do
    if [[ -e "$d/lib$lib.so" ]]; then here=$d; break; fi
    [[ -n "$versioned" ]] || versioned=$(ls "$d/lib$lib.so".[0-9]* 2>/dev/null | sort -V | tail -1 || true)
  done
  if [[ -n "$here" ]]; then
    [[ " ${found_in[*]} " == *" $here "* ]] || found_in+=("$here")
  elif [[ -n "$versioned" ]]; then
    mkdir -p "$links"
    ln -sf "$versioned" "$links/lib$lib.so"
    linked+=("lib$lib.so -> $versioned")
    export LD_LIBRARY_PATH=$(dirname "$versioned"):$LD_LIBRARY_PATH
  else
    missing+=("lib$lib.so")
  fi
done
looked="looked in $(IFS=,; echo "${lib_dirs[*]}" | sed 's/,/, /g')"
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "gpu_check: missing from the CUDA toolkit: ${missing[*]} ($looked)" >&2
  row "CUDA libraries" "MISSING ${missing[*]}" "$looked${linked[*]:+; linked ${linked[*]}}"
elif [[ ${#linked[@]} -gt 0 ]]; then
  row "CUDA libraries" "found (versioned only)" "linked under $links: ${linked[*]} ($looked)"
else
  row "CUDA libraries" "found" "libcudart.so, libcublas.so, libcublasLt.so, libcusolver.so in $(IFS=,; echo "${found_in[*]}" | sed 's/,/ and /g')"
fi
prefix_args=()
[[ ${#linked[@]} -eq 0 ]] || prefix_args+=(-DCMAKE_LIBRARY_PATH="$links")
[[ ${#prefixes[@]} -eq 0 ]] || prefix_args+=(-DCMAKE_PREFIX_PATH="$(IFS=';'; echo "${prefixes[*]}")")

# The steps after the build, named as in the table.
declare -A step_name=([tests]="gpu tests" [memcheck]="compute-sanitizer memcheck" [racecheck]="compute-sanitizer racecheck"
                      [bench]="bench_gpu" [micro]="micro benchmark")
# not_run_rest WHY: every step after the build, reported as not run.
not_run_rest() {
  local s
  for s in ${steps_all//,/ }; do row "${step_name[$s]}" "not run ($1)" "-"; done
}

# 1. Build for sm_90 (always: every later step needs it), only the targets the
# chosen steps run.
targets=()
if wanted tests; then targets+=(test_gpu); fi
if wanted tests || wanted memcheck || wanted racecheck || wanted micro; then targets+=(train_gpt); fi
if wanted bench; then targets+=(bench_gpu); fi
[[ ${#targets[@]} -gt 0 ]] || targets=(test_gpu train_gpt bench_gpu)
if command -v ninja >/dev/null; then
  generator=Ninja
else
  generator="Unix Makefiles"
  echo "gpu_check: ninja not found: building with make" | tee "$log_dir/generator.log"
fi
# A build folder made by the other generator is configured again from scratch.
if [[ -f build-gpu/CMakeCache.txt ]] && ! grep -qx "CMAKE_GENERATOR:INTERNAL=$generator" build-gpu/CMakeCache.txt; then
  rm -rf build-gpu/CMakeCache.txt build-gpu/CMakeFiles
fi
status=0
if step_begin 180; then
  limited cmake -S . -B build-gpu -G "$generator" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$nvcc" \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DLLMDION_CUDA=ON -DLLMDION_MPI=OFF "${prefix_args[@]}" >"$log_dir/configure.log" 2>&1 || status=$?
  if [[ $status -eq 0 ]]; then
    limited cmake --build build-gpu -j "$jobs" --target "${targets[@]}" >"$log_dir/build.log" 2>&1 || status=$?
  fi
else
  status=125
fi
if [[ $status -eq 0 ]]; then
  nccl=$(grep -oE 'llm.dion: NCCL (/\S+|not found)' "$log_dir/configure.log" | tail -1 | sed 's/llm.dion: NCCL //' || true)
  row build "ok" "sm_90, $generator, ${targets[*]}, NCCL ${nccl:-?}, $(step_s)"
elif [[ $status -eq 125 ]]; then
  row build "not run (no time left)" "--deadline $deadline"
  not_run_rest "no build"
  echo
  cat "$result"
  echo "gpu_check: no time left for the build (--deadline $deadline): nothing checked" >&2
  exit 0
else
  # A build that fails, or is still running at its cap, leaves nothing to check.
  for f in configure build; do
    if [[ -f "$log_dir/$f.log" ]]; then echo "--- build-gpu/logs/$f.log"; tail -40 "$log_dir/$f.log"; fi
  done
  why="FAILED (exit $status)"
  [[ $status -ne 124 && $status -ne 137 ]] || why="FAILED (timed out)"
  row build "$why" "${missing[*]:+missing ${missing[*]}, }logs in build-gpu/logs, $(step_s)"
  not_run_rest "build failed"
  echo
  cat "$result"
  fail "build failed (logs in $log_dir)"
fi

# 2. Every gpu test; here none may skip. A test that kills the binary (a crash,
# a CUDA error that aborts) or runs $hang_s s without finishing is named, and the
# binary runs again on the tests not yet run.
hung=86  # the status watch_tests gives a hang
# watch_tests LOG CMD...: CMD under a timeout of what is left of the step,
# output in LOG; CMD's status (124/137 when the time ran out, 125 when none was
# left), or $hung once gtest's last line has been one test's "[ RUN ]" for $hang_s s.
watch_tests() {
  local log=$1 left pid last="" seen since status=0
  shift
  left=$(( step_end - $(date +%s) ))
  (( left >= 15 )) || return 125
  timeout --kill-after=10 "$left" "$@" >"$log" 2>&1 &
  pid=$!
  since=$(date +%s)
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.5
    seen=$(grep -E '^\[ *(RUN|OK|FAILED|SKIPPED) *\]' "$log" | tail -1 || true)
    if [[ "$seen" != "$last" ]]; then last=$seen since=$(date +%s); fi
    if [[ "$last" == "[ RUN"* ]] && (( $(date +%s) - since >= hang_s )); then
      kill -TERM "$pid" 2>/dev/null || true  # timeout passes it on, and kills 10 s later
      wait "$pid" 2>/dev/null || true
      return $hung
    fi
  done
  wait "$pid" || status=$?
  return $status
}
if ! wanted tests; then
  row "gpu tests" "not run (not in --only)" "-"
elif ! step_begin 150; then
  row "gpu tests" "not run (no time left)" "-"
else
  crashed=() crashed_why=() status=0
  total=$(timeout 30 ./build-gpu/test_gpu --gtest_list_tests 2>/dev/null | grep -c '^  ' || true)
  # A test's own result line (a parameterized one's FAILED line names its parameter).
  result_line='^\[ *(OK|FAILED|SKIPPED) *\] [^ ,]+(, where .*)? \([0-9]+ ms\)$'
  for pass in 1 2 3 4 5 6; do
    filter=()
    if [[ $pass -gt 1 ]]; then
      done_tests=$(cat "$log_dir"/test_gpu_[0-9].log | grep -E "$result_line" | sed -E 's/^\[[^]]*\] ([^ ,]+).*/\1/' || true)
      filter=("--gtest_filter=-$(printf '%s\n' $done_tests "${crashed[@]}" | paste -sd:)")
    fi
    status=0
    watch_tests "$log_dir/test_gpu_$pass.log" ./build-gpu/test_gpu "${filter[@]}" || status=$?
    # 0 (all passed) and 1 (some failed) are gtest's own; 124/137: the step's
    # time ran out; 125: none was left. Else a crash or a hang, of the test last started.
    case $status in 0|1|124|125|137) break ;; esac
    last=$(grep -oE '^\[ RUN      \] \S+' "$log_dir/test_gpu_$pass.log" | tail -1 | sed 's/^\[ RUN      \] //' || true)
    [[ -n "$last" ]] || break
    crashed+=("$last")
    if [[ $status -eq $hung ]]; then crashed_why+=("$last (hung ${hang_s} s)"); else crashed_why+=("$last (exit $status)"); fi
  done
  cat "$log_dir"/test_gpu_[0-9].log >"$log_dir/test_gpu.log"
  count() { grep -E "$result_line" "$log_dir/test_gpu.log" | grep -c "^\[ *$1 *\]" || true; }
  passed=$(count OK) skipped=$(count SKIPPED) ran=$(grep -cE "$result_line" "$log_dir/test_gpu.log" || true)
  failed_tests=$(grep -E "$result_line" "$log_dir/test_gpu.log" | grep '^\[  FAILED  \]' | sed -E 's/^\[[^]]*\] ([^ ,]+).*/\1/' |
                 sort -u | paste -sd' ' || true)
  grep -E 'Failure|Expected|Which is|relative|error' "$log_dir/test_gpu.log" | head -60 || true
  if [[ -n "$failed_tests" || ${#crashed[@]} -gt 0 || $skipped -gt 0 ]]; then
    verdict=FAILED
  elif [[ $status -eq 0 ]]; then
    verdict=passed
  elif [[ $status -eq 1 ]]; then
    verdict="FAILED (exit 1, no test named)"
  else
    verdict=$(outcome $status passed)
  fi
  [[ $verdict != FAILED* ]] || failed tests
  row "gpu tests" "$verdict" "$passed passed, $skipped skipped, failed: ${failed_tests:-none}, crashed or hung: ${crashed_why[*]:-none}, $ran of ${total:-?} run, $(step_s)"
  # The ten slowest, to size later checks.
  { grep -hE '^\[       OK \] \S+ \([0-9]+ ms\)$' "$log_dir/test_gpu.log" || true; } |
    sed -E 's/.*\] (\S+) \(([0-9]+) ms\)/\2 ms \1/' | sort -rn | head -10 >"$log_dir/test_gpu_slowest.txt"
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

# 3. One short training under each of compute-sanitizer's memcheck and racecheck.
sanitizer=$(command -v compute-sanitizer || echo "$cuda_root/bin/compute-sanitizer")
sanitize() {  # sanitize TOOL CAP WHAT SETS...
  local tool=$1 cap=$2 what=$3 log=$log_dir/sanitizer_$1.log status=0 summary errors verdict
  shift 3
  if ! wanted "$tool"; then row "${step_name[$tool]}" "not run (not in --only)" "-"; return; fi
  if ! step_begin "$cap"; then row "${step_name[$tool]}" "not run (no time left)" "-"; return; fi
  if [[ ! -x "$sanitizer" ]]; then row "${step_name[$tool]}" "not run (no compute-sanitizer at $sanitizer)" "-"; return; fi
  rm -rf "$data/out_$tool"
  limited "$sanitizer" --tool "$tool" --error-exitcode 3 ./build-gpu/train_gpt --config "$data/tiny.yaml" \
    --set run.out_dir="$data/out_$tool" "$@" >"$log" 2>&1 || status=$?
  summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -1 | sed 's/^=* *//' || true)
  errors=$(grep -cE '^========= +(Invalid |Program hit |Error: |Race reported)' "$log" || true)
  verdict=$(outcome $status clean)
  case $status in
    0) ;;
    3) verdict=ERRORS ;;
    124|137) [[ $errors -eq 0 ]] || verdict="ERRORS ($errors before it was cut short)" ;;
  esac
  [[ $status -ne 0 ]] && tail -30 "$log"
  [[ $verdict == ERRORS* || $verdict == FAILED* ]] && failed "$tool"
  row "${step_name[$tool]}" "$verdict" "2 training steps, L2 d64 T64, $what: ${summary:-no summary}, $(step_s)"
}
sanitize memcheck 75 "paper block, Dion2, bf16 products" \
  --set model.arch=paper --set optim.matrix=dion2 --set optim.ortho_precision=bf16
sanitize racecheck 90 "GPT-2 block, Dion2" --set optim.matrix=dion2

# 4. Benchmarks: bench_gpu, and the paper's micro benchmark on this one GPU.
if ! wanted bench; then
  row bench_gpu "not run (not in --only)" "-"
elif ! step_begin 120; then
  row bench_gpu "not run (no time left)" "-"
else
  status=0
  limited ./build-gpu/bench_gpu "${BENCH_BATCH:-16}" 10 >"$log_dir/bench_gpu.log" 2>&1 || status=$?
  cat "$log_dir/bench_gpu.log"
  judge bench "$status"
  row bench_gpu "$(outcome $status ran)" "GPT-2 124M micro-batch ${BENCH_BATCH:-16}, 10 steps, $(step_s)"
fi
if ! wanted micro; then
  row "micro benchmark" "not run (not in --only)" "-"
elif ! step_begin 60; then
  row "micro benchmark" "not run (no time left)" "-"
else
  status=0
  limited env PYTHON=python3 bash scripts/micro_benchmark.sh "$data/micro" --ranks 1 --widths "1024 2048" --steps 21 \
    --optimizers "muon dion2_alpha0.25" --train-gpt build-gpu/train_gpt --set run.device=cuda \
    --set optim.ortho_precision=bf16 >"$log_dir/micro_benchmark.log" 2>&1 || status=$?
  tail -5 "$log_dir/micro_benchmark.log"
  verdict=$(outcome $status ran)
  # Every run done (the CSV complete) and only the PNG failed (no matplotlib): it ran.
  if [[ $status -ne 0 && $status -ne 124 && $status -ne 137 && -f "$micro_csv" ]]; then
    status=0 verdict="ran (no PNG: see build-gpu/logs/micro_benchmark.log)"
  fi
  judge micro "$status"
  row "micro benchmark" "$verdict" \
      "4-layer GPT, 1 rank, Muon and Dion2 alpha 0.25 at d_model 1024 and 2048, bf16 products, optimizer step ms (mean of the last 20 of 21), $(step_s)"
fi

write_results
echo
cat "$result"
echo "gpu_check: written to $result"
if [[ ${#failures[@]} -gt 0 ]]; then
  echo "gpu_check: FAILED: ${failures[*]}" >&2
  exit 1
fi
echo "gpu_check: no failures ($(( $(date +%s) - started )) s)"
