#!/usr/bin/env bash
# Set-up, build and the whole test suite (CUDA tests report "skipped" without a device), then
# the same CPU suite under AddressSanitizer + UBSan (scripts/sanitize.sh, build-san/) and every
# fuzz target for 15 s (scripts/fuzz.sh). Extra arguments go to the cmake of build/.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/setup.sh
bash scripts/build.sh -DMQ_CUDA=AUTO "$@"  # CUDA sources compile whenever nvcc is present
(cd build && ctest --output-on-failure -j "$(nproc)" --timeout 900)
echo "mq: build and tests took $((SECONDS - start)) s"
bash scripts/sanitize.sh
bash scripts/fuzz.sh 15
echo "mq: all checks passed in $((SECONDS - start)) s"
