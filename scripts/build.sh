#!/usr/bin/env bash
# Configures and builds mq into build/ (Release). Extra arguments go to cmake, e.g. -DMQ_CUDA=OFF.
# MQ_TARGET=mqtrain builds only that target (the main job needs nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$(nproc)" ${MQ_TARGET:+--target "$MQ_TARGET"}
