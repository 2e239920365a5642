#!/usr/bin/env bash
# Downloads the binary version of CIFAR-10 or CIFAR-100, verifies its size and MD5, and extracts
# only the data files into DIR (flat: DIR/data_batch_1.bin ... or DIR/train.bin ...).
#
#   scripts/get-cifar.sh 10|100 [DIR] [--archive PATH] [--keep] [--force]
#
#   DIR defaults to mqtrain's default data directory for the set: $MQ_DATA/cifar10 (or
#   cifar100), else $XDG_DATA_HOME/mq/..., else ~/.local/share/mq/... (data/registry.h), so
#   `mqtrain quantize -d CIFAR10 ...` finds it without --data.
#
#   --archive PATH   use a local copy of the archive instead of downloading (also: MQ_CIFAR_ARCHIVE)
#   --keep           keep the downloaded archive in DIR
#   --force          extract again even if DIR already holds the files
#
# Overrides (for tests and mirrors): MQ_CIFAR_URL, MQ_CIFAR_SIZE, MQ_CIFAR_MD5.
set -euo pipefail

prog=get-cifar.sh
die() { echo "$prog: error: $*" >&2; exit 1; }
usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

variant="" dir="" archive="${MQ_CIFAR_ARCHIVE:-}" keep=0 force=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --archive) [[ $# -ge 2 ]] || die "--archive needs a path"; archive="$2"; shift 2 ;;
    --archive=*) archive="${1#--archive=}"; shift ;;
    --keep) keep=1; shift ;;
    --force) force=1; shift ;;
    -h|--help) usage ;;
    -*) echo "$prog: error: unknown option $1" >&2; usage ;;
    *)
      if [[ -z "$variant" ]]; then variant="$1"
      elif [[ -z "$dir" ]]; then dir="$1"
      else echo "$prog: error: unexpected argument $1" >&2; usage
      fi
      shift ;;
  esac
done
[[ -n "$variant" ]] || usage
if [[ -z "$dir" ]]; then
  if [[ -n "${MQ_DATA:-}" ]]; then root=$MQ_DATA
  elif [[ -n "${XDG_DATA_HOME:-}" ]]; then root=$XDG_DATA_HOME/mq
  else root=$HOME/.local/share/mq
  fi
  dir=$root/cifar$variant
  echo "$prog: no DIR given: using mqtrain's default data directory $dir"
fi

case "$variant" in
  10)
    name=cifar-10-binary.tar.gz
    size=170052171
    md5=c32a1d4ab5d03f1284b67883e8d87530
    folder=cifar-10-batches-bin
    record=3073
    files=(data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin
           test_batch.bin)
    extras=(batches.meta.txt)
    ;;
  100)
    name=cifar-100-binary.tar.gz
    size=168513733
    md5=03b5dce01913d631647c71ecec9e9cb8
    folder=cifar-100-binary
    record=3074
    files=(train.bin test.bin)
    extras=(coarse_label_names.txt fine_label_names.txt)
    ;;
  *) die "unknown variant '$variant': use 10 or 100" ;;
esac
url="${MQ_CIFAR_URL:-https://www.cs.toronto.edu/~kriz/$name}"
size="${MQ_CIFAR_SIZE:-$size}"
md5="${MQ_CIFAR_MD5:-$md5}"

for tool in tar md5sum stat; do
  command -v "$tool" >/dev/null || die "'$tool' is required but not installed"
done

# A data file is complete when it is a non-empty multiple of the record size.
complete() {
  local f="$1" n
  [[ -f "$f" ]] || return 1
  n=$(stat -c %s "$f")
  (( n > 0 && n % record == 0 ))
}

mkdir -p "$dir" || die "cannot create directory $dir"
if (( ! force )); then
  all=1
  for f in "${files[@]}"; do complete "$dir/$f" || all=0; done
  if (( all )); then
    echo "$prog: CIFAR-$variant already present in $dir (use --force to extract again)"
    exit 0
  fi
fi

tmp=$(mktemp -d "$dir/.get-cifar.XXXXXX") || die "cannot create a temporary directory in $dir"
trap 'rm -rf "$tmp"' EXIT

if [[ -n "$archive" ]]; then
  [[ -f "$archive" ]] || die "archive $archive not found"
  echo "$prog: using local archive $archive"
else
  archive="$tmp/$name"
  echo "$prog: downloading $url"
  if command -v curl >/dev/null; then
    curl -fL --retry 3 --connect-timeout 30 -o "$archive" "$url" ||
      die "download of $url failed; fetch it by other means and pass --archive PATH"
  elif command -v wget >/dev/null; then
    wget -O "$archive" "$url" ||
      die "download of $url failed; fetch it by other means and pass --archive PATH"
  else
    die "neither curl nor wget is installed; download $url by hand and pass --archive PATH"
  fi
fi

actual_size=$(stat -c %s "$archive")
[[ "$actual_size" == "$size" ]] ||
  die "$archive is $actual_size bytes, expected $size: incomplete or wrong download; delete it and retry"
actual_md5=$(md5sum "$archive" | cut -d' ' -f1)
[[ "$actual_md5" == "$md5" ]] ||
  die "$archive has MD5 $actual_md5, expected $md5: corrupt or wrong archive; delete it and retry"
echo "$prog: size and MD5 verified"

# Extract only the expected members (named explicitly: nothing else, no path from the archive).
listing=$(tar -tzf "$archive") || die "$archive is not a readable tar.gz archive"
members=()
for f in "${files[@]}"; do
  grep -qx "$folder/$f" <<<"$listing" || die "$archive lacks the member $folder/$f"
  members+=("$folder/$f")
done
for f in "${extras[@]}"; do
  if grep -qx "$folder/$f" <<<"$listing"; then members+=("$folder/$f"); fi
done
tar -xzf "$archive" -C "$tmp" --no-same-owner --no-same-permissions "${members[@]}" ||
  die "extracting $archive failed"

for f in "${files[@]}"; do
  complete "$tmp/$folder/$f" ||
    die "$folder/$f in $archive is not a whole number of $record-byte records"
done
for m in "${members[@]}"; do mv -f "$tmp/$m" "$dir/"; done
if (( keep )) && [[ "$archive" == "$tmp/$name" ]]; then mv -f "$archive" "$dir/$name"; fi
echo "$prog: CIFAR-$variant ready in $dir (${files[*]})"
