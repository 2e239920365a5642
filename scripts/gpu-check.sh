#!/usr/bin/env bash
# One-shot check of the CUDA backend on a GPU machine (x86-64, CUDA 13): reports missing
# packages, builds with -DMQ_CUDA=ON on all cores, runs the [cuda] tests, the kernel benchmark,
# the ResNet whole-step benchmark and a short CPU-vs-GPU training comparison when those binaries
# exist. Every stage is independent (a failure does not stop the rest) and has its own time
# limit; a summary ends the run. Logs go to $OUT (when set) or ./gpu-check-logs.
# Usage: scripts/gpu-check.sh [build-dir]      Budget: under 8 minutes on an H100.
#        MQ_GPU_CHECK_SKIP_BUILD=1 reuses an already built build-dir.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-gpu}
# Logs: one file per stage; with $OUT set they are also packed into $OUT/gpu-check-logs.tgz
# (the device tool returns few files) beside $OUT/summary.txt.
LOGS=${OUT:+/tmp/gpu-check-logs}
LOGS=${LOGS:-$PWD/gpu-check-logs}
mkdir -p "$LOGS"
# Build dependencies without internet: unpacked from .deps/*.deb, cuDNN from pip if need be.
source scripts/gpu-deps.sh
JOBS=$(nproc)
START=$(date +%s)
declare -a SUMMARY=()

# stage NAME LIMIT_SECONDS COMMAND...: runs COMMAND with a timeout, tees to $LOGS/NAME.log.
stage() {
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  echo
  echo "===== [$name] $* (limit ${limit}s)"
  # Through bash -c so stages may be the (exported) shell functions below.
  timeout --kill-after=10 "$limit" bash -c '"$@"' stage "$@" 2>&1 | tee "$LOGS/$name.log"
  local rc=${PIPESTATUS[0]}
  local dt=$(($(date +%s) - t0))
  local verdict=ok
  ((rc == 124 || rc == 137)) && verdict="TIMEOUT"
  ((rc != 0 && rc != 124 && rc != 137)) && verdict="FAILED (rc $rc)"
  SUMMARY+=("$(printf '%-16s %-16s %4ss  %s' "$name" "$verdict" "$dt" "$LOGS/$name.log")")
  return "$rc"
}
skip() { SUMMARY+=("$(printf '%-16s %-16s' "$1" "skipped: $2")"); echo "===== [$1] skipped: $2"; }

# ---- 0. environment and packages (no internet there: only report what is missing) ----
env_report() {
  echo "host: $(uname -srm), $(nproc) cores"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
    --format=csv,noheader
  command -v nvcc >/dev/null && nvcc --version | tail -1 || echo "nvcc: NOT on PATH"
  for d in /usr/local/cuda/bin /usr/local/cuda-13.0/bin; do
    [[ -x $d/nvcc ]] && ! command -v nvcc >/dev/null && echo "hint: export PATH=$d:\$PATH"
  done
  local missing=()
  for p in cmake ninja-build libeigen3-dev catch2 libcli11-dev nlohmann-json3-dev libfmt-dev \
           zlib1g-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "MISSING packages: ${missing[*]}"
    echo "  install with: apt-get install -y ${missing[*]}   (needs a package mirror)"
  else
    echo "all build packages present"
  fi
  ls /usr/local/cuda*/lib64/libcudnn.so* /usr/lib/x86_64-linux-gnu/libcudnn.so* 2>/dev/null \
    | head -2 || true
}
export -f env_report
stage env 60 env_report
# Use nvcc from the usual place when PATH lacks it.
if ! command -v nvcc >/dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-13.0/bin; do [[ -x $d/nvcc ]] && PATH=$d:$PATH; done
fi

# ---- 1. configure and build ----
GENERATOR="Unix Makefiles"
command -v ninja >/dev/null && GENERATOR=Ninja
export BUILD JOBS GENERATOR PATH
build() {
  cmake -S . -B "$BUILD" -G "$GENERATOR" -DCMAKE_BUILD_TYPE=Release -DMQ_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DMQ_FMT_HEADER_ONLY=ON &&
    cmake --build "$BUILD" -j "$JOBS"
}
export -f build
if [[ ${MQ_GPU_CHECK_SKIP_BUILD:-0} == 1 ]]; then
  skip build "MQ_GPU_CHECK_SKIP_BUILD=1 (using $BUILD as it is)"
else
  stage build 240 build
fi

# ---- 2. CUDA tests ----
if [[ -x $BUILD/mq_tests ]]; then
  if ! stage cuda-tests 150 "$BUILD/mq_tests" "[cuda]" --durations yes; then
    # Rerun with a synchronize after every launch so a faulting kernel names itself.
    MQ_CUDA_SYNC_DEBUG=1 stage cuda-tests-sync 90 "$BUILD/mq_tests" "[cuda]"
  fi
else
  skip cuda-tests "no $BUILD/mq_tests"
fi

# ---- 3. kernel benchmark ----
if [[ -x $BUILD/mqbench ]]; then
  stage mqbench 60 "$BUILD/mqbench" --device cuda --repeat 20 --json "$LOGS/mqbench.json"
else
  skip mqbench "no $BUILD/mqbench"
fi

# ---- 4. whole-step benchmark ----
if [[ -x $BUILD/resnet_step ]]; then
  stage resnet-step 60 "$BUILD/resnet_step" --device cuda --batch 128 --warmup 5 --steps 50
  # PyTorch's same step on the same GPU, in the same run (python3 there holds PyTorch).
  stage resnet-step-torch 90 python3 benchmarks/resnet_step_torch.py --device cuda --batch 128 \
    --warmup 5 --steps 50
  stage resnet-step-cpu 60 "$BUILD/resnet_step" --device cpu --batch 128 --warmup 1 --steps 3 \
    --threads "$JOBS"
else
  skip resnet-step "no $BUILD/resnet_step"
fi

# ---- 5. short training, CPU vs GPU, same seed ----
train() {
  "$BUILD/mqtrain" pretrain -d synthetic:1024 -m resnet20 -n 1 --batch-size 128 --seed 1 \
    --device "$1" "${@:2}"
}
export -f train
if [[ -x $BUILD/mqtrain ]] && "$BUILD/mqtrain" pretrain --help 2>/dev/null | grep -q synthetic; then
  stage train-cpu 90 train cpu --threads "$JOBS"
  stage train-gpu 60 train cuda
  stage metaquant-gpu 60 "$BUILD/mqtrain" quantize -d synthetic:1024 -n 1 --batch-size 128 \
    --seed 1 --device cuda -meta MultiFC -bw 1 --results /tmp/mq-results
  echo "---- last lines, CPU then GPU (losses should agree to a few digits)"
  tail -n 3 "$LOGS/train-cpu.log" "$LOGS/train-gpu.log"
else
  skip train "no $BUILD/mqtrain with a synthetic dataset"
fi

# ---- 6. the NCCL path with one rank (docs/distributed.md) ----
# One MPI rank, forced into the data-parallel step by --accumulate 2, sums its CUDA gradients over
# NCCL; a sum over one rank changes nothing, so the losses must equal the same run without MPI.
nccl_check() {
  local common=(quantize -d synthetic:512 -n 1 --batch-size 128 --seed 1 --device cuda
                -meta MultiFC -bw 1 --accumulate 2 --results /tmp/mq-nccl)
  rm -rf /tmp/mq-nccl
  "$BUILD/mqtrain" "${common[@]}" --run single &&
    MQ_FORCE_MPI=1 mpirun --allow-run-as-root -np 1 "$BUILD/mqtrain" "${common[@]}" --run nccl &&
    cmp /tmp/mq-nccl/*/runs-Quant/single/loss.txt /tmp/mq-nccl/*/runs-Quant/nccl/loss.txt &&
    echo "NCCL path: losses identical to --accumulate 2 without MPI"
}
export -f nccl_check
if [[ -x $BUILD/mqtrain ]] && command -v mpirun >/dev/null &&
   grep -qs "MQ_WITH_NCCL=1" "$BUILD/build.ninja" "$BUILD/CMakeFiles/mq_engine.dir/flags.make"; then
  stage nccl-1rank 90 nccl_check
else
  skip nccl-1rank "no mpirun on this machine or no MPI/NCCL in $BUILD"
fi

# ---- summary ----
{
  echo
  echo "===== gpu-check summary ($(($(date +%s) - START))s total, logs in $LOGS)"
  for line in "${SUMMARY[@]}"; do echo "  $line"; done
  grep -h "test cases\|All tests passed" "$LOGS/cuda-tests.log" 2>/dev/null | tail -1 | sed 's/^/  tests: /'
} | tee "$LOGS/summary.txt"
if [[ -n "${OUT:-}" ]]; then
  cp "$LOGS/summary.txt" "$OUT/summary.txt"
  tar -czf "$OUT/gpu-check-logs.tgz" -C "$(dirname "$LOGS")" "$(basename "$LOGS")"
fi
