#!/usr/bin/env bash
# Data parallelism on the CPU (docs/distributed.md): ResNet20 training throughput of 2 MPI
# ranks x 1 thread (`mpirun -np 2 mqtrain ... --threads 1`) against 1 process x 2 threads, per
# model mode, alternated for ROUNDS rounds; and the collectives' bytes and time per step as
# mqtrain reports them after each epoch. Images/s is the epoch's training throughput (the test
# evaluation is not in it). One line per measurement, then a markdown summary.
#   benchmarks/run_distributed.sh [--rounds 3] [--images 2560] [--modes "fp ste MultiFC FC-Grad LSTMFC"]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 images=2560 modes="fp ste MultiFC FC-Grad LSTMFC"
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    *) echo "run_distributed.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=$(realpath "${MQ_BUILD_DIR:-build}/mqtrain")
[[ -x $bin ]] || { echo "run_distributed.sh: $bin not built; run scripts/build.sh" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "run_distributed.sh: no mpirun (apt install openmpi-bin)" >&2; exit 1; }
work=$(mktemp -d)
out=$work/results.txt
trap 'rm -rf "$work"' EXIT
mpi=(mpirun --oversubscribe)
[[ $(id -u) -eq 0 ]] && mpi+=(--allow-run-as-root)
args_for() {  # the mqtrain arguments of a mode
  local common=(-d "synthetic:$images" -bs 128 -n 1 --seed 1 --results "$work/r" --run "$1-$2")
  case "$1" in
    fp) echo pretrain -o SGD-M "${common[@]}" --save "$work/fp-save" ;;
    ste) echo quantize -meta ste -q dorefa -bw 1 -o SGD "${common[@]}" ;;
    *) echo quantize -meta "$1" -q dorefa -bw 1 -o SGD "${common[@]}" ;;
  esac
}
for ((r = 1; r <= rounds; r++)); do
  for mode in $modes; do
    # shellcheck disable=SC2046
    one=$("$bin" $(args_for "$mode" "1x2-$r") --threads 2 | grep -o '[0-9.]* images/s' | awk '{print $1}')
    # shellcheck disable=SC2046
    two_out=$("${mpi[@]}" -np 2 "$bin" $(args_for "$mode" "2x1-$r") --threads 1)
    two=$(grep -o '[0-9.]* images/s' <<<"$two_out" | awk '{print $1}')
    reduce=$(grep 'collectives:' <<<"$two_out" | sed -E 's/.*collectives: ([0-9.]+) MB and ([0-9.]+) ms.*/\1 \2/')
    echo "$r $mode $one $two $reduce" | tee -a "$out"
  done
done
py=$(command -v /usr/bin/python3 || command -v python3)
"$py" - "$out" "$images" <<'PY'
import sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r, mode, one, two, mb, ms = line.split()
    rows[mode].append((float(one), float(two), float(mb), float(ms)))
print(f"\nResNet20, batch 128, {sys.argv[2]} synthetic images per epoch, images/s per round:\n")
print("| mode | 1 rank x 2 threads | 2 ranks x 1 thread | 2x1 / 1x2 | collectives per step |")
print("|---|---|---|---|---|")
for mode, v in rows.items():
    one = " / ".join(f"{a:.0f}" for a, _, _, _ in v)
    two = " / ".join(f"{b:.0f}" for _, b, _, _ in v)
    ratio = " / ".join(f"{b / a:.2f}" for a, b, _, _ in v)
    mb = v[0][2]
    ms = " / ".join(f"{d:.1f}" for _, _, _, d in v)
    print(f"| {mode} | {one} | {two} | {ratio} | {mb:.2f} MB, {ms} ms |")
PY
