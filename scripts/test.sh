#!/usr/bin/env bash
# Set-up, build and the whole test suite (CUDA tests report "skipped" without a device).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -DMQ_CUDA=AUTO "$@"  # CUDA sources compile whenever nvcc is present
cd build && ctest --output-on-failure -j "$(nproc)" --timeout 900
