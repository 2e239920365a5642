#!/usr/bin/env bash
# The main job on a fresh machine: install dependencies, build, then train a full-precision
# ResNet20 on the embedded synthetic dataset, printing loss, accuracy and images/s.
# Extra arguments go to `mqtrain pretrain` (e.g. -n 5, -d fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/mqtrain pretrain -d synthetic:2000 -n 4 -bs 64 -lr 0.02 -o SGD-M --device auto "$@"
