#!/usr/bin/env bash
# The longer Fashion-MNIST recipe of the README: ResNet20 in full precision on all 60,000
# training images, then 1-bit dorefa quantization of that model with the STE baseline and with
# MetaQuant (MultiFC), each printing its final test accuracy on the 10,000 test images.
# Assumes a build (bash scripts/build.sh). Epochs: MQ_FP_EPOCHS (8), MQ_Q_EPOCHS (4).
# Extra arguments go to every mqtrain run (e.g. --device cuda, --threads 2).
set -euo pipefail
cd "$(dirname "$0")/.."
out=Results/recipe-fashion-mnist
mkdir -p "$out"
common=(-m resnet20 -d fashion-mnist -bs 128 --device auto)
fp_epochs=${MQ_FP_EPOCHS:-8}
q_epochs=${MQ_Q_EPOCHS:-4}

./build/mqtrain pretrain "${common[@]}" -n "$fp_epochs" -o SGD-M -lr 0.05 -ad 3 \
  --run recipe-fp --save "$out/fp" "$@" | tee "$out/fp.log"
for meta in ste MultiFC; do
  ./build/mqtrain quantize "${common[@]}" -n "$q_epochs" -meta "$meta" -q dorefa -bw 1 -o Adam \
    -lr 0.001 -ad 3 --pretrained "$out/fp" --run "recipe-$meta" "$@" | tee "$out/$meta.log"
done

final() { grep -o 'final test accuracy .*' "$1" | tail -1; }
echo
echo "Fashion-MNIST, ResNet20 ($fp_epochs FP epochs, $q_epochs quantization epochs):"
echo "  full precision:          $(final "$out/fp.log")"
echo "  1-bit dorefa, STE:       $(final "$out/ste.log")"
echo "  1-bit dorefa, MetaQuant: $(final "$out/MultiFC.log")"
