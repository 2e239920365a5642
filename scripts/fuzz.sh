#!/usr/bin/env bash
# Runs the libFuzzer targets built by scripts/sanitize.sh (build-san/fuzz_<name>, ASan + UBSan).
#   scripts/fuzz.sh [SECONDS] [TARGET...]     SECONDS per target (default 20); TARGET: npy or
#                                             fuzz_npy (default: every tests/fuzz/fuzz_*.cpp)
# For each target: first its regression inputs tests/fuzz/regressions/<name>/* (each must pass),
# then SECONDS of fuzzing on a scratch copy of its seed corpus tests/fuzz/corpus/<name>/ (the
# committed corpus is never modified). Prints one line per target (executions, coverage,
# findings) and exits non-zero if any target crashed, leaked, ran out of memory or timed out,
# naming the input that did it. Targets run MQ_FUZZ_JOBS at a time (default: the core count).
# Everything a run leaves (grown corpus, findings, logs) is in build-san/fuzz-out/<name>/,
# emptied when that target runs again.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${MQ_SAN_DIR:-build-san}
seconds=${1:-20}
[[ $# -gt 0 ]] && shift
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] ||
  { echo "fuzz.sh: SECONDS must be a positive whole number, got '$seconds'" >&2; exit 2; }
jobs_max=${MQ_FUZZ_JOBS:-$(nproc)}
source scripts/sanitizer-env.sh
# The readers are single-threaded; one OpenMP thread keeps runs reproducible and cheap.
export OMP_NUM_THREADS=1

targets=()
if [[ $# -gt 0 ]]; then
  for t in "$@"; do
    [[ " ${targets[*]} " == *" ${t#fuzz_} "* ]] || targets+=("${t#fuzz_}")
  done
else
  # every target in the sources (a binary left in build-san/ by a deleted source is not run)
  for src in tests/fuzz/fuzz_*.cpp; do
    [[ -f "$src" ]] && targets+=("$(basename "$src" .cpp | sed 's/^fuzz_//')")
  done
  if ((${#targets[@]} == 0)); then
    echo "mq: no fuzz targets (tests/fuzz/fuzz_*.cpp): nothing to fuzz"
    exit 0
  fi
fi
for t in "${targets[@]}"; do
  [[ -x "$dir/fuzz_$t" ]] ||
    { echo "fuzz.sh: $dir/fuzz_$t is not built (scripts/sanitize.sh builds every tests/fuzz/fuzz_*.cpp)" >&2; exit 2; }
done

# libFuzzer settings shared by the regression and the fuzzing runs: a 2 GB memory cap and
# 10 s per input, so a reader that allocates or loops without bound is a finding.
common=(-rss_limit_mb=2048 -timeout=10)

# fuzz_one NAME: writes fuzz-out/NAME/{log.txt,regressions.txt,result}; returns non-zero on a finding.
fuzz_one() {
  local name=$1 bin=$root/$dir/fuzz_$1 out=$root/$dir/fuzz-out/$1
  rm -rf "$out"
  mkdir -p "$out/corpus" "$out/findings"
  local regress=()
  if [[ -d tests/fuzz/regressions/$name ]]; then
    while IFS= read -r -d '' f; do regress+=("$f"); done \
      < <(find "$root/tests/fuzz/regressions/$name" -type f -print0 | sort -z)
  fi
  if ((${#regress[@]})); then
    # Given files (not folders), libFuzzer runs each input once and stops at the first failure.
    if ! (cd "$out" && "$bin" "${common[@]}" -artifact_prefix="$out/findings/" \
            "${regress[@]}" >"$out/regressions.txt" 2>&1); then
      local bad
      bad=$(sed -n 's/^Running: //p' "$out/regressions.txt" | tail -1)
      echo "$name: FAILED regression input ${bad:-?} (of ${#regress[@]}); log $out/regressions.txt" >"$out/result"
      return 1
    fi
  fi
  [[ -d tests/fuzz/corpus/$name ]] && cp -r "tests/fuzz/corpus/$name/." "$out/corpus/"
  local status=0 began=$SECONDS
  # The outer timeout only guards against a fuzzer that does not stop by itself.
  (cd "$out" && timeout --kill-after=10 $((seconds + 120)) "$bin" "${common[@]}" \
     -max_total_time="$seconds" -print_final_stats=1 -close_fd_mask=1 \
     -artifact_prefix="$out/findings/" "$out/corpus" >"$out/log.txt" 2>&1) || status=$?
  local execs cov findings artifacts
  # (a run that stops at its first input has no coverage line: "?")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log.txt" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' "$out/log.txt" | tail -1)
  artifacts=$(find "$out/findings" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
                -o -name 'oom-*' -o -name 'slow-unit-*' \) | sort)
  findings=$(grep -c . <<<"$artifacts" || true)
  local line
  line=$(printf '%-16s %3d regression inputs ok, %9s executions in %3d s, coverage %5s edges, %d findings' \
         "$name" "${#regress[@]}" "${execs:-?}" $((SECONDS - began)) "${cov:-?}" "$findings")
  if ((status != 0 || findings > 0)); then
    [[ $status -ge 124 && $status -le 137 && -z "$artifacts" ]] && line+=" (did not stop: killed after $((seconds + 120)) s)"
    line+="; FAILED (exit $status), log $out/log.txt"
    [[ -n "$artifacts" ]] && line+=", input(s): $(tr '\n' ' ' <<<"$artifacts")"
    echo "$line" >"$out/result"
    return 1
  fi
  echo "$line" >"$out/result"
}

echo "mq: fuzzing ${#targets[@]} target(s), ${seconds} s each, ${jobs_max} at a time"
start=$SECONDS
pids=()
for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
  fuzz_one "$t" &
  pids+=($!)
done
failed=0
for i in "${!targets[@]}"; do
  wait "${pids[$i]}" || failed=1
  cat "$dir/fuzz-out/${targets[$i]}/result" 2>/dev/null ||
    { echo "${targets[$i]}: FAILED (no result; see $dir/fuzz-out/${targets[$i]}/)"; failed=1; }
done
echo "mq: fuzzing took $((SECONDS - start)) s"
if ((failed)); then
  echo "fuzz.sh: a target failed: reproduce with $dir/fuzz_<name> <input>; once fixed, add the input" \
       "to tests/fuzz/regressions/<name>/" >&2
  exit 1
fi
