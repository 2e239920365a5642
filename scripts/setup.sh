#!/usr/bin/env bash
# Installs every build and test dependency of mq from Debian packages. Idempotent: packages
# already present are skipped by apt. Run as root (or with sudo available).
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libeigen3-dev catch2 libcli11-dev nlohmann-json3-dev zlib1g-dev libfmt-dev
  dataset-fashion-mnist
  # data-parallel training (MPI) and its tests (mpirun)
  libopenmpi-dev openmpi-bin
  # oneDNN for the CPU convolution passes where it is faster than mq's own kernels
  libdnnl-dev
  # the sanitizer and fuzzing build (scripts/sanitize.sh, scripts/fuzz.sh): clang with its
  # ASan/UBSan/libFuzzer runtimes, clang's OpenMP runtime, llvm-symbolizer for the stacks
  clang-14 libclang-rt-14-dev libomp-14-dev llvm-14
)
# Optional extras: PyTorch (CPU) for the side-by-side benchmarks, matplotlib for plots, BLIS and
# LIBXSMM for the GEMM library comparison (build/gemm_libs).
if [[ "${MQ_SETUP_EXTRAS:-0}" == 1 ]]; then
  packages+=(python3-torch libopenblas0 python3-numpy python3-matplotlib libblis-dev libxsmm-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "mq: dependencies installed"
