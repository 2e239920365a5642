#!/usr/bin/env bash
# The sanitizer pass: builds mq with clang 14, AddressSanitizer and UndefinedBehaviorSanitizer
# (-fno-sanitize-recover: the first report fails the test) into build-san/, and runs the whole
# CPU test suite there (ctest labels cpu and slow). The same build holds the libFuzzer targets
# (MQ_FUZZ=ON), which scripts/fuzz.sh runs. Extra arguments go to cmake.
# MQ_SAN_BUILD_ONLY=1 only builds; MQ_SAN_DIR picks another build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${MQ_SAN_DIR:-build-san}
source scripts/sanitizer-env.sh

start=$SECONDS
# -O1 with line tables only: cheaper to compile than -O2 -g, as fast to run under the
# sanitizers, and every report still names file and line (-Wno-pass-failed: at -O1 clang
# does not vectorize and says so for every `omp simd` loop). CUDA is off: nothing on a GPU
# is instrumented. MPI is off: OpenMPI's own allocations would fill LeakSanitizer's report,
# and this build then runs the test that a build without MPI refuses to run under a launcher
# (the Release suite runs the mpirun tests). oneDNN is off: Debian's libdnnl runs on GCC's
# OpenMP runtime and this build on clang's, two runtimes in one process; the sanitized
# build runs mq's own convolution kernels, the Release suite oneDNN's passes.
CC=${CC:-clang-14} CXX=${CXX:-clang++-14} cmake -S . -B "$dir" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG -Wno-pass-failed" \
  -DMQ_CUDA=OFF -DMQ_MPI=OFF -DMQ_DNNL=OFF -DMQ_SANITIZE=ON -DMQ_FUZZ=ON "$@" >/dev/null
# mq_tests pulls in the tools the tests run (mqtrain, mqtrain_faults, mqbench); mq_fuzz is
# every fuzz target. Nothing else (benchmarks, layer checks) is built here.
cmake --build "$dir" -j "$(nproc)" --target mq_tests mq_fuzz
echo "mq: sanitizer build took $((SECONDS - start)) s"
[[ "${MQ_SAN_BUILD_ONLY:-0}" == 1 ]] && exit 0

start=$SECONDS
# One LSTMFC golden replay of the five (each takes ~30 s under ASan; the other four run the
# same code on other quantizers and optimizers, and the Release suite replays them all). The
# custom-cnn example's training run (100 s under ASan, most of it evaluating 10,000 test images)
# is left to the Release suite; its code runs sanitized in the zoo and run tests.
(cd "$dir" && ctest --output-on-failure -j "$(nproc)" --timeout 1200 -L 'cpu|slow' \
   -E '^(golden metaquant-(dorefa-sgd|dorefa-adam|dorefa2-adam|bwn-sgd)-LSTMFC|custom-cnn: the example trains.*)$')
echo "mq: sanitizer tests took $((SECONDS - start)) s"
