#!/usr/bin/env bash
# ResNet20 CPU training step, quiet and under load: mq and PyTorch at 1 and 2 threads, with and
# without one competing busy process (a single-threaded spin loop, like another user's job on a
# shared machine). Rounds alternate the programs so drift hits both alike; every round is
# printed. Usage: benchmarks/run_load.sh [--rounds 3] [--steps 6] [--batch 128]
# (build first: scripts/build.sh; PyTorch from MQ_SETUP_EXTRAS=1 bash scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 steps=6 batch=128
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    *) echo "run_load.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=${MQ_BUILD_DIR:-build}/resnet_step
[[ -x $bin ]] || { echo "run_load.sh: $bin not built; run scripts/build.sh" >&2; exit 1; }
py=$(command -v /usr/bin/python3 || command -v python3)
have_torch=1
"$py" -c 'import torch' 2>/dev/null || { have_torch=0; echo "run_load.sh: no PyTorch, mq only" >&2; }

spinner=""
start_load() { "$py" -c 'while True: pass' & spinner=$!; sleep 1; }
stop_load() {  # (wait reports the spinner's SIGTERM as status 143: not a failure here)
  if [[ -n $spinner ]]; then kill "$spinner" 2>/dev/null || true; wait "$spinner" 2>/dev/null || true; fi
  spinner=""
}
trap stop_load EXIT

images_per_s() {  # impl threads -> train images/s (impl mq-passive: OMP_WAIT_POLICY=passive)
  local args=(--threads "$2" --batch "$batch" --steps "$steps")
  if [[ $1 == mq ]]; then "$bin" "${args[@]}" --json
  elif [[ $1 == mq-passive ]]; then OMP_WAIT_POLICY=passive "$bin" "${args[@]}" --json
  else OMP_NUM_THREADS=$2 "$py" benchmarks/resnet_step_torch.py "${args[@]}"; fi |
    "$py" -c "import json,sys; print('%.1f' % json.load(sys.stdin)['train_images_per_s'])"
}

# mq-passive: threads that wait at the end of a parallel region sleep at once instead of
# spinning first (libgomp reads OMP_WAIT_POLICY when it loads, so it is set from outside).
impls=(mq mq-passive); ((have_torch)) && impls+=(pytorch)
echo "ResNet20 batch $batch, $steps timed steps, train images/s; load = one busy process"
printf '%-6s %-8s %-11s %s\n' round load impl "1 thread / 2 threads"
for ((r = 1; r <= rounds; ++r)); do
  for load in quiet loaded; do
    [[ $load == loaded ]] && start_load
    for impl in "${impls[@]}"; do
      printf '%-6s %-8s %-11s %s / %s\n' "$r" "$load" "$impl" "$(images_per_s "$impl" 1)" \
        "$(images_per_s "$impl" 2)"
    done
    stop_load
  done
done
