#!/usr/bin/env bash
# The whole test suite from a fresh Debian machine: install and build (with
# Debian's numpy, matplotlib and torch for the reference checks), fetch the
# corpus, vocabulary and reference encoders (npm), then run every ctest label:
#   build/       unit, mpi, and gpu (which skips without a GPU)
#   build-emu/   emu: the CUDA backend on the host execution layer (tests/emu),
#                every gpu test and the cuda training runs executed on the CPU
#   build-emu-asan/, build-emu-tsan/
#                sanitizer: the kernel tests and the layer's own again under
#                AddressSanitizer + UBSan and under ThreadSanitizer (the host's
#                memcheck and racecheck)
# Extra arguments go to the first two ctests (e.g. -L unit, -R Tokenizer) and
# skip the sanitizer passes; LLMDION_EMU=0 skips the emulated builds.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
LLMDION_TEST_DEPS=1 bash scripts/setup.sh
bash data/prepare_sotu.sh
bash data/npm_fetch.sh tiktoken@1.0.22
(cd build && ctest --output-on-failure -j "$(nproc)" "$@")
[ "${LLMDION_EMU:-1}" = 0 ] && exit 0

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
emulated_build() {  # folder, extra cmake arguments...
  local folder=$1
  shift
  cmake -S "$root" -B "$root/$folder" "${generator[@]}" -DLLMDION_CUDA_EMULATE=ON "$@" >/dev/null
}

emulated_build build-emu -DCMAKE_BUILD_TYPE=Release
cmake --build build-emu -j "$(nproc)"
(cd build-emu && ctest --output-on-failure -j "$(nproc)" "$@")

# The kernel tests and the layer's own under each sanitizer (label sanitizer),
# in a run of the whole suite.
[ $# -gt 0 ] && exit 0
for sanitizer in address thread; do
  folder=build-emu-${sanitizer:0:1}san
  emulated_build "$folder" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLMDION_EMU_SANITIZE=$sanitizer
  cmake --build "$folder" -j "$(nproc)" --target test_gpu_kernels test_emu
  (cd "$folder" && ctest --output-on-failure -L sanitizer)
done
