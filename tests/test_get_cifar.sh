#!/usr/bin/env bash
# Offline test of scripts/get-cifar.sh against small archives built here, with the expected
# size and MD5 passed in through MQ_CIFAR_SIZE / MQ_CIFAR_MD5. Prints "ok" lines; exits non-zero
# on the first failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
script="$root/scripts/get-cifar.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/mq_get_cifar.XXXXXX")
trap 'rm -rf "$work"' EXIT
export MQ_CIFAR_URL="http://127.0.0.1:9/never-downloaded"  # any download attempt fails fast

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# record FILE LABELBYTES N: N records of the given label byte(s) and 3072 pixel bytes.
pixels="$work/pixels"
head -c 3072 /dev/zero | tr '\0' '\7' >"$pixels"
records() {
  local file="$1" labels="$2" n="$3" i
  : >"$file"
  for ((i = 0; i < n; i++)); do
    printf "$labels" >>"$file"
    cat "$pixels" >>"$file"
  done
}

# ---- build a fake CIFAR-10 archive with an extra member that must not be extracted ----
src="$work/src10/cifar-10-batches-bin"
mkdir -p "$src"
for i in 1 2 3 4 5; do records "$src/data_batch_$i.bin" '\003' 2; done
records "$src/test_batch.bin" '\011' 1
echo "airplane" >"$src/batches.meta.txt"
echo "not data" >"$src/extra.txt"
tar -czf "$work/c10.tar.gz" -C "$work/src10" cifar-10-batches-bin
size10=$(stat -c %s "$work/c10.tar.gz")
md510=$(md5sum "$work/c10.tar.gz" | cut -d' ' -f1)

# ---- good archive through the env var ----
out="$work/out10"
MQ_CIFAR_ARCHIVE="$work/c10.tar.gz" MQ_CIFAR_SIZE=$size10 MQ_CIFAR_MD5=$md510 \
  bash "$script" 10 "$out" >"$work/log" 2>&1 || { cat "$work/log"; fail "good archive rejected"; }
for f in data_batch_1.bin data_batch_5.bin test_batch.bin batches.meta.txt; do
  [[ -f "$out/$f" ]] || fail "missing $f after extraction"
done
[[ ! -e "$out/extra.txt" && ! -e "$out/cifar-10-batches-bin" ]] || fail "unexpected member extracted"
[[ $(stat -c %s "$out/data_batch_1.bin") == $((2 * 3073)) ]] || fail "wrong size of data_batch_1.bin"
[[ -z "$(find "$out" -name '.get-cifar.*')" ]] || fail "temporary directory left behind"
ok "extracts exactly the expected CIFAR-10 members"

# ---- second run: already present ----
MQ_CIFAR_ARCHIVE="$work/c10.tar.gz" MQ_CIFAR_SIZE=$size10 MQ_CIFAR_MD5=$md510 \
  bash "$script" 10 "$out" >"$work/log" 2>&1 || fail "rerun failed"
grep -q "already present" "$work/log" || fail "rerun did not notice the files"
ok "rerun is a no-op"

# ---- wrong MD5, wrong size: nothing extracted ----
bad="$work/bad"
if MQ_CIFAR_SIZE=$size10 MQ_CIFAR_MD5=0123456789abcdef0123456789abcdef \
  bash "$script" 10 "$bad" --archive "$work/c10.tar.gz" >"$work/log" 2>&1; then
  fail "wrong MD5 accepted"
fi
grep -q "MD5" "$work/log" || { cat "$work/log"; fail "MD5 error not reported"; }
[[ -z "$(ls -A "$bad")" ]] || fail "files left after an MD5 failure"
ok "wrong MD5 rejected"
if MQ_CIFAR_SIZE=$((size10 + 1)) MQ_CIFAR_MD5=$md510 \
  bash "$script" 10 "$bad" --archive "$work/c10.tar.gz" >"$work/log" 2>&1; then
  fail "wrong size accepted"
fi
grep -q "expected $((size10 + 1))" "$work/log" || { cat "$work/log"; fail "size error not reported"; }
ok "wrong size rejected"
# The default checksum applies without overrides: the small archive fails it.
if bash "$script" 10 "$bad" --archive "$work/c10.tar.gz" >"$work/log" 2>&1; then
  fail "default checksum not enforced"
fi
grep -q "expected 170052171" "$work/log" || { cat "$work/log"; fail "default size not used"; }
ok "official size enforced by default"

# ---- archive lacking a member, and a member of the wrong size ----
rm "$src/data_batch_4.bin"
tar -czf "$work/c10b.tar.gz" -C "$work/src10" cifar-10-batches-bin
if MQ_CIFAR_SIZE=$(stat -c %s "$work/c10b.tar.gz") MQ_CIFAR_MD5=$(md5sum "$work/c10b.tar.gz" | cut -d' ' -f1) \
  bash "$script" 10 "$bad" --archive "$work/c10b.tar.gz" >"$work/log" 2>&1; then
  fail "archive without data_batch_4.bin accepted"
fi
grep -q "lacks the member cifar-10-batches-bin/data_batch_4.bin" "$work/log" || { cat "$work/log"; fail "missing member not named"; }
ok "missing member rejected"
records "$src/data_batch_4.bin" '\003' 2
head -c 100 /dev/zero >>"$src/data_batch_4.bin"
tar -czf "$work/c10c.tar.gz" -C "$work/src10" cifar-10-batches-bin
if MQ_CIFAR_SIZE=$(stat -c %s "$work/c10c.tar.gz") MQ_CIFAR_MD5=$(md5sum "$work/c10c.tar.gz" | cut -d' ' -f1) \
  bash "$script" 10 "$bad" --archive "$work/c10c.tar.gz" >"$work/log" 2>&1; then
  fail "truncated member accepted"
fi
grep -q "data_batch_4.bin.*3073-byte records" "$work/log" || { cat "$work/log"; fail "bad member not named"; }
[[ -z "$(ls -A "$bad")" ]] || fail "files left after a bad member"
ok "member of the wrong size rejected"

# ---- CIFAR-100 ----
src="$work/src100/cifar-100-binary"
mkdir -p "$src"
records "$src/train.bin" '\002\013' 3
records "$src/test.bin" '\023\143' 1
printf 'apple\n' >"$src/fine_label_names.txt"
tar -czf "$work/c100.tar.gz" -C "$work/src100" cifar-100-binary
out="$work/out100"
MQ_CIFAR_SIZE=$(stat -c %s "$work/c100.tar.gz") MQ_CIFAR_MD5=$(md5sum "$work/c100.tar.gz" | cut -d' ' -f1) \
  bash "$script" 100 "$out" --archive="$work/c100.tar.gz" >"$work/log" 2>&1 || { cat "$work/log"; fail "CIFAR-100 archive rejected"; }
[[ $(stat -c %s "$out/train.bin") == $((3 * 3074)) && -f "$out/test.bin" && -f "$out/fine_label_names.txt" ]] ||
  fail "CIFAR-100 files not extracted"
ok "CIFAR-100 extracted"

# ---- usage errors ----
if bash "$script" 7 "$bad" >"$work/log" 2>&1; then fail "variant 7 accepted"; fi
grep -q "use 10 or 100" "$work/log" || fail "bad variant not explained"
if bash "$script" >"$work/log" 2>&1; then fail "missing variant accepted"; fi
grep -q "get-cifar.sh 10|100 \[DIR\]" "$work/log" || fail "usage not printed"
ok "usage errors"

# ---- no DIR: mqtrain's default data directory, $MQ_DATA/cifar10 ----
MQ_DATA="$work/default" MQ_CIFAR_ARCHIVE="$work/c10.tar.gz" MQ_CIFAR_SIZE=$size10 MQ_CIFAR_MD5=$md510 \
  bash "$script" 10 >"$work/log" 2>&1 || { cat "$work/log"; fail "no-DIR extraction failed"; }
[[ -f "$work/default/cifar10/data_batch_5.bin" ]] || fail "not extracted into \$MQ_DATA/cifar10"
grep -q "default data directory $work/default/cifar10" "$work/log" || fail "default not announced"
ok "no DIR: extracted into \$MQ_DATA/cifar10"

# Hand the extracted directories to the C++ test when asked.
if [[ -n "${MQ_GET_CIFAR_KEEP:-}" ]]; then
  cp -r "$work/out10" "$MQ_GET_CIFAR_KEEP/cifar10"
  cp -r "$work/out100" "$MQ_GET_CIFAR_KEEP/cifar100"
fi
echo "all get-cifar tests passed"
