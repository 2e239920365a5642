#!/usr/bin/env bash
# The CPU issue's targets side by side, alternated over rounds in one run: mq and PyTorch 1.13
# (full precision and STE training steps, eval, peak memory), then mq's MetaQuant steps
# (MultiFC, FC-Grad, LSTMFC). Prints one markdown row per program and round.
# Usage: benchmarks/run_cpu_targets.sh [--rounds 3] [--threads 2] [--steps 10] [--batch 128]
#        (MQ_BUILD_DIR picks the build; PyTorch from Debian's python3-torch)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 threads=2 steps=10 batch=128
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    *) echo "run_cpu_targets.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=${MQ_BUILD_DIR:-build}/resnet_step
[[ -x $bin ]] || { echo "run_cpu_targets.sh: $bin not built; run scripts/build.sh" >&2; exit 1; }
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null ||
  { echo "run_cpu_targets.sh: PyTorch not found; MQ_SETUP_EXTRAS=1 bash scripts/setup.sh" >&2; exit 1; }
common=(--device cpu --threads "$threads" --batch "$batch" --steps "$steps")
row() {  # round, program, mode, json
  "$py" - "$@" <<'PY'
import json, sys
rnd, prog, mode, j = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
print(f"| {rnd} | {prog} | {mode} | {j['train_ms']:.1f} | {j['train_images_per_s']:.1f} | "
      f"{j['eval_images_per_s']:.1f} | {j['peak_rss_mb']:.0f} | {j['peak_rss_over_idle_mb']:.0f} |")
PY
}
echo "ResNet20, batch $batch, $threads threads, $steps timed steps; $(date -u '+%F %H:%M') UTC"
echo "| round | program | mode | train ms | train img/s | eval img/s | peak RSS MB | over idle MB |"
echo "|---|---|---|---:|---:|---:|---:|---:|"
for ((r = 1; r <= rounds; r++)); do
  for mode in fp ste; do
    row "$r" mq "$mode" "$("$bin" "${common[@]}" --mode "$mode" --json | tail -1)"
    row "$r" "PyTorch" "$mode" \
      "$(OMP_NUM_THREADS=$threads "$py" benchmarks/resnet_step_torch.py "${common[@]}" --mode "$mode" | tail -1)"
  done
  for mode in MultiFC FC-Grad LSTMFC; do
    row "$r" mq "$mode" "$("$bin" "${common[@]}" --mode "$mode" --json | tail -1)"
  done
done
