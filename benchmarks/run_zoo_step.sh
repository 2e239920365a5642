#!/usr/bin/env bash
# The zoo's CPU training step (batch 128): mq in STE and MetaQuant MultiFC mode (dorefa 1 bit,
# hidden 100) beside PyTorch's STE step of the same model (resnet_step_torch.py --mode ste),
# alternated for ROUNDS rounds so that every ratio compares neighbours in time. One line per
# measurement, then a summary with every round's numbers.
#   benchmarks/run_zoo_step.sh [--rounds 3] [--threads 2] [--steps 3] [--models "resnet164 vgg-small mobilenetv2"]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 threads=2 steps=3 batch=128 models="resnet164 vgg-small mobilenetv2"
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    *) echo "run_zoo_step.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=${MQ_BUILD_DIR:-build}/resnet_step
[[ -x $bin ]] || { echo "run_zoo_step.sh: $bin not built; run scripts/build.sh" >&2; exit 1; }
py=$(command -v /usr/bin/python3 || command -v python3)
common=(--threads "$threads" --batch "$batch" --steps "$steps" --warmup 1 --device cpu)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for m in $models; do
    for mode in ste MultiFC; do
      ms=$("$bin" --model "$m" --mode "$mode" "${common[@]}" --json |
           "$py" -c 'import json,sys; print(json.load(sys.stdin)["train_ms"])')
      echo "$r $m mq-$mode $ms" | tee -a "$out"
    done
    ms=$(OMP_NUM_THREADS=$threads "$py" benchmarks/resnet_step_torch.py --model "$m" --mode ste \
         "${common[@]}" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["train_ms"])')
    echo "$r $m pytorch-ste $ms" | tee -a "$out"
  done
done
"$py" - "$out" "$batch" "$threads" <<'PY'
import sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r, m, impl, ms = line.split()
    rows[(m, impl)].append(float(ms))
print(f"\nCPU training step, batch {sys.argv[2]}, {sys.argv[3]} threads: ms per step, every round")
models = list(dict.fromkeys(m for m, _ in rows))
for m in models:
    ste, mf, pt = rows[(m, "mq-ste")], rows[(m, "mq-MultiFC")], rows[(m, "pytorch-ste")]
    fmt = lambda v: " / ".join(f"{x:.0f}" for x in v)
    print(f"{m:12} mq STE {fmt(ste)} | mq MultiFC {fmt(mf)} | PyTorch STE {fmt(pt)}")
    print(f"{'':12} MultiFC/STE {' / '.join(f'{b/a:.2f}' for a, b in zip(ste, mf))}"
          f" | mq STE vs PyTorch STE (speed) {' / '.join(f'{p/a:.2f}x' for a, p in zip(ste, pt))}")
PY
