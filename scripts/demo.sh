#!/usr/bin/env bash
# The main job on a fresh machine: install the dependencies, build mqtrain, then on Fashion-MNIST
# (Debian's dataset-fashion-mnist) pretrain ResNet20 in full precision and quantize it to 1 bit
# (dorefa) with MetaQuant (MultiFC meta network), printing both test accuracies on the full
# 10,000-image test set. Sized to finish within 10 minutes on a 2-core machine, build included.
# Sizes: MQ_DEMO_SUBSET training images (default 20000), MQ_DEMO_FP_EPOCHS (3),
# MQ_DEMO_Q_EPOCHS (2). Extra arguments go to both mqtrain runs (e.g. --device cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
bash scripts/setup.sh
# Without a GPU the CUDA backend could not run: skip compiling it (minutes on 2 cores).
cuda=AUTO
nvidia-smi -L 2>/dev/null | grep -q '^GPU' || cuda=OFF
MQ_TARGET=mqtrain bash scripts/build.sh -DMQ_CUDA=$cuda
t_build=$(date +%s)
subset=${MQ_DEMO_SUBSET:-20000}
out=Results/main-job
mkdir -p "$out"
common=(-m resnet20 -d fashion-mnist --train-subset "$subset" -bs 128 --device auto)

echo "== 1/2: full-precision ResNet20 on Fashion-MNIST ($subset training images)"
./build/mqtrain pretrain "${common[@]}" -n "${MQ_DEMO_FP_EPOCHS:-3}" -o SGD-M -lr 0.05 -ad 2 \
  --run main-job-fp --save "$out/fp" "$@" | tee "$out/fp.log"

echo "== 2/2: 1-bit MetaQuant (dorefa, MultiFC) from the full-precision model"
./build/mqtrain quantize "${common[@]}" -n "${MQ_DEMO_Q_EPOCHS:-2}" -meta MultiFC -q dorefa -bw 1 \
  -o Adam -lr 0.001 --pretrained "$out/fp" --run main-job-metaquant --save "$out/metaquant" "$@" |
  tee "$out/metaquant.log"

final() { grep -o 'final test accuracy [0-9.]*%' "$1" | tail -1 | awk '{print $4}'; }
t1=$(date +%s)
echo
echo "Fashion-MNIST, ResNet20, full 10k test set:"
echo "  full precision         test accuracy $(final "$out/fp.log")"
echo "  1-bit MetaQuant dorefa test accuracy $(final "$out/metaquant.log")"
echo "set-up and build $((t_build - t0)) s, training $((t1 - t_build)) s, total $((t1 - t0)) s"
