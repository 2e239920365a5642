#!/usr/bin/env bash
# ResNet20 CPU training step, quiet and under load: mq and PyTorch at 1 and 2 threads, with and
# without one competing busy process (a single-threaded spin loop, like another user's job on a
# shared machine). Rounds alternate the programs so drift hits both alike; every round is
# printed. mq runs as mqtrain does (the thread governor, engine/thread_governor.h, picks each
# step's thread count up to --threads) and with every step on all threads (mqtrain
# --fixed-threads). Images/s are over all timed steps (the governor's probes included), after 10
# warm-up steps (its first probe falls in them).
# --session own starts the busy process in its own session, as another user's job would be: with
# the kernel's autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled) each session then
# gets an equal share of the CPU, so this program's threads together get one core; by default it
# shares this script's session and each thread gets an equal share (2 of 3 threads' worth).
# Usage: benchmarks/run_load.sh [--rounds 3] [--steps 40] [--batch 128] [--session same|own]
# (build first: scripts/build.sh; PyTorch from MQ_SETUP_EXTRAS=1 bash scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 steps=40 batch=128 session=same
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --session) session=$2; shift 2 ;;
    *) echo "run_load.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $session == same || $session == own ]] ||
  { echo "run_load.sh: --session takes same or own, not '$session'" >&2; exit 2; }
bin=${MQ_BUILD_DIR:-build}/resnet_step
[[ -x $bin ]] || { echo "run_load.sh: $bin not built; run scripts/build.sh" >&2; exit 1; }
py=$(command -v /usr/bin/python3 || command -v python3)
have_torch=1
"$py" -c 'import torch' 2>/dev/null || { have_torch=0; echo "run_load.sh: no PyTorch, mq only" >&2; }

source benchmarks/busy_process.sh

images_per_s() {  # impl threads -> train images/s
  local args=(--threads "$2" --batch "$batch" --steps "$steps" --warmup 10)
  if [[ $1 == mq ]]; then "$bin" "${args[@]}" --adapt-threads --json
  elif [[ $1 == mq-fixed ]]; then "$bin" "${args[@]}" --json
  else OMP_NUM_THREADS=$2 "$py" benchmarks/resnet_step_torch.py "${args[@]}"; fi |
    "$py" -c "import json,sys; print('%.1f' % json.load(sys.stdin)['train_images_per_s'])"
}

# One thread is the same program either way: mq-fixed runs 2 threads only.
echo "ResNet20 batch $batch, mean of $steps timed steps, train images/s; load = one busy process ($session session)"
printf '| round | load | mq 1 thread | mq 2 threads (governed) | mq 2 threads (fixed) |'
((have_torch)) && printf ' PyTorch 1 thread | PyTorch 2 threads |'
printf '\n|---|---|---:|---:|---:|'
((have_torch)) && printf -- '---:|---:|'
printf '\n'
for ((r = 1; r <= rounds; ++r)); do
  for load in quiet loaded; do
    [[ $load == loaded ]] && start_load "$session"
    row="| $r | $load | $(images_per_s mq 1) | $(images_per_s mq 2) | $(images_per_s mq-fixed 2) |"
    ((have_torch)) && row+=" $(images_per_s pytorch 1) | $(images_per_s pytorch 2) |"
    echo "$row"
    stop_load
  done
done
