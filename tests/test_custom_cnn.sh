#!/usr/bin/env bash
# The worked example (docs/examples/custom_cnn.cpp) trains as its user runs it: full precision
# on Fashion-MNIST (its default dataset), then 1-bit MetaQuant from that state (quantize finds
# pretrain's default save), with mqtrain's logs and checkpoints. On a 512-image subset, 1 epoch.
#   tests/test_custom_cnn.sh PATH/TO/custom_cnn
set -euo pipefail
bin=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/mq_custom_cnn.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
common=(-n 1 --train-subset 512 --batch-size 64 --device cpu --results "$work/Results")
runs=$work/Results/custom-cnn-fashion-mnist

"$bin" pretrain "${common[@]}" >"$work/pre.log" 2>&1 || { cat "$work/pre.log"; fail "pretrain failed"; }
grep -q "custom-cnn, full precision on fashion-mnist" "$work/pre.log" || { cat "$work/pre.log"; fail "not custom-cnn on Fashion-MNIST"; }
[[ -f $runs/custom-cnn-fashion-mnist-pretrain/fc1.weight.npy ]] || fail "pretrain saved no state"
echo "ok - pretrain"

"$bin" quantize -q dorefa -bw 1 -meta MultiFC "${common[@]}" >"$work/q.log" 2>&1 || { cat "$work/q.log"; fail "quantize failed"; }
grep -q "no --pretrained: starting from $runs/custom-cnn-fashion-mnist-pretrain" "$work/q.log" || { cat "$work/q.log"; fail "quantize did not start from pretrain's state"; }
grep -q "MetaQuant MultiFC" "$work/q.log" || fail "not a MetaQuant run"
grep -q "final test accuracy" "$work/q.log" || fail "no final accuracy"
ls "$runs"/runs-Quant/*/checkpoint.mqck >/dev/null || fail "no checkpoint"
ls "$runs"/runs-Quant/*/loss.txt >/dev/null || fail "no loss log"
echo "ok - quantize"

# A mistake: an input the model does not fit (a model name it does not know).
if "$bin" pretrain -m resnet21 "${common[@]}" >"$work/bad.log" 2>&1; then fail "unknown model accepted"; fi
grep -q "custom_cnn: error: --model 'resnet21'" "$work/bad.log" || { cat "$work/bad.log"; fail "no clear error"; }
grep -q "custom-cnn" "$work/bad.log" || fail "the zoo listed without custom-cnn"
echo "ok - errors"
