#!/usr/bin/env bash
# What a loaded 2-core machine leaves to a 2-thread step at best: the ResNet20 step of two
# independent 1-thread mq processes at once (no barrier between them: the most any split of
# one step over two threads could do), beside 1 and 2 threads of one process, quiet and beside
# one busy process started in this script's session ("same") or in a session of its own
# ("own", as another user's job would be; the kernel's autogroup scheduling then gives each
# session an equal share of the CPU). Every round is printed; images/s are the mean of the
# timed steps, "a+b" the two processes' own figures.
# Usage: benchmarks/run_load_bound.sh [--rounds 3] [--steps 30] [--batch 128]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 steps=30 batch=128
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    *) echo "run_load_bound.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=${MQ_BUILD_DIR:-build}/resnet_step
[[ -x $bin ]] || { echo "run_load_bound.sh: $bin not built; run scripts/build.sh" >&2; exit 1; }
py=$(command -v /usr/bin/python3 || command -v python3)

source benchmarks/busy_process.sh

images_per_s() {  # threads -> train images/s, every step on that many threads
  "$bin" --threads "$1" --batch "$batch" --steps "$steps" --warmup 8 --json |
    "$py" -c "import json,sys; print('%.1f' % json.load(sys.stdin)['train_images_per_s'])"
}
two_at_once() {
  local a b
  a=$(mktemp) b=$(mktemp)
  images_per_s 1 >"$a" & local p1=$!
  images_per_s 1 >"$b" & local p2=$!
  wait "$p1" "$p2"
  echo "$(<"$a")+$(<"$b")"
  rm -f "$a" "$b"
}

echo "ResNet20 batch $batch, mean of $steps timed steps after 8 warm-up, train images/s"
echo "| round | load | 1 thread | two 1-thread processes at once | 2 threads |"
echo "|---|---|---:|---:|---:|"
for ((r = 1; r <= rounds; ++r)); do
  for load in quiet same own; do
    [[ $load != quiet ]] && start_load "$load"
    label=$load
    [[ $load != quiet ]] && label="busy process, $load session"
    echo "| $r | $label | $(images_per_s 1) | $(two_at_once) | $(images_per_s 2) |"
    stop_load
  done
done
