#!/usr/bin/env bash
# Runs mq's and PyTorch's ResNet20 full-precision step side by side in one run and prints both
# and the ratio. Usage: benchmarks/run_resnet_step.sh [--device cpu|cuda] [--threads 2]
#                       [--batch 128] [--steps 10]   (build first: scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
device=cpu threads=2 batch=128 steps=10
while (($#)); do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "run_resnet_step.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=${MQ_BUILD_DIR:-build}/resnet_step
[[ -x $bin ]] || { echo "run_resnet_step.sh: $bin not built; run scripts/build.sh" >&2; exit 1; }
py=$(command -v /usr/bin/python3 || command -v python3)
args=(--device "$device" --threads "$threads" --batch "$batch" --steps "$steps")
mq_json=$("$bin" "${args[@]}" --json)
torch_json=$(OMP_NUM_THREADS=$threads "$py" benchmarks/resnet_step_torch.py "${args[@]}")
"$py" - "$mq_json" "$torch_json" <<'PY'
import json, sys
mq, pt = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"ResNet20 batch {mq['batch']}, {mq['threads']} threads, device {mq['device']}")
print(f"{'':10}{'train ms':>10}{'train img/s':>13}{'eval img/s':>12}{'peak RSS MB':>13}{'over idle MB':>14}")
for r in (mq, pt):
    print(f"{r['impl'][:10]:10}{r['train_ms']:10.1f}{r['train_images_per_s']:13.1f}"
          f"{r['eval_images_per_s']:12.1f}{r['peak_rss_mb']:13.1f}{r['peak_rss_over_idle_mb']:14.1f}")
print(f"ratio mq/pytorch: train {mq['train_images_per_s']/pt['train_images_per_s']:.2f}x, "
      f"eval {mq['eval_images_per_s']/pt['eval_images_per_s']:.2f}x, "
      f"peak memory over idle {mq['peak_rss_over_idle_mb']/pt['peak_rss_over_idle_mb']:.2f}x")
if 'cuda_malloc_calls_in_timed_steps' in mq:
    print(f"mq cudaMalloc calls during timed steps: {mq['cuda_malloc_calls_in_timed_steps']}")
PY
