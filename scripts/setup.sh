#!/usr/bin/env bash
# Installs what llm.dion needs from Debian (only what is missing; no prompts) and
# builds it in Release into build/. Safe to run again.
#   bash scripts/setup.sh            # CPU build (+ CUDA backend when nvcc is found)
#   LLMDION_CUDA=OFF bash scripts/setup.sh
#   LLMDION_TEST_DEPS=1 bash scripts/setup.sh  # also numpy, matplotlib, torch: the tests' references
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

packages=(cmake g++ make ninja-build libyaml-cpp-dev libspdlog-dev libcli11-dev libopenmpi-dev openmpi-bin
          libopenblas-openmp-dev libxxhash-dev libgtest-dev python3)
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
[ -n "${LLMDION_TEST_DEPS:-}" ] && packages+=(python3-numpy python3-matplotlib python3-torch python3-yaml)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cuda_flag=()
[ -n "${LLMDION_CUDA:-}" ] && cuda_flag=(-DLLMDION_CUDA="$LLMDION_CUDA")
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release "${cuda_flag[@]}" >/dev/null
cmake --build "$root/build" -j "$(nproc)"
