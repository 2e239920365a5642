#!/usr/bin/env bash
# Sourced by scripts/gpu-check.sh on a GPU machine that cannot reach Debian's archive: makes the
# build dependencies findable without installing anything system-wide.
#  - Debian packages downloaded beforehand into .deps/ (see "Preparing the GPU check" in
#    docs/architecture.md) are unpacked under /tmp/mqdeps and put on CMAKE_PREFIX_PATH.
#  - cuDNN is taken from the system, or else from the nvidia-cudnn pip package of python3.
mq_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if compgen -G "$mq_root/.deps/*.deb" >/dev/null; then
  prefix=/tmp/mqdeps
  mkdir -p "$prefix"
  for deb in "$mq_root"/.deps/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$prefix"
    else
      (cd "$prefix" && ar p "$deb" "$(ar t "$deb" | grep '^data.tar')" | tar -x --auto-compress 2>/dev/null ||
        ar p "$deb" "$(ar t "$deb" | grep '^data.tar')" | tar -xJ)
    fi
  done
  export CMAKE_PREFIX_PATH="$prefix/usr:$prefix/usr/lib/x86_64-linux-gnu/cmake:$prefix/usr/share${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # OpenMPI unpacked away from /usr finds its own files through OPAL_PREFIX.
  if [[ -x $prefix/usr/bin/mpirun ]] && ! command -v mpirun >/dev/null; then
    export OPAL_PREFIX="$prefix/usr" PATH="$prefix/usr/bin:$PATH"
  fi
  echo "gpu-deps: unpacked $(ls "$mq_root"/.deps/*.deb | wc -l) Debian packages under $prefix"
fi
if [[ -z "${MQ_CUDNN_ROOT:-}" ]] && ! ls /usr/include/cudnn.h /usr/include/x86_64-linux-gnu/cudnn.h \
     /usr/local/cuda/include/cudnn.h >/dev/null 2>&1; then
  root=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null || true)
  if [[ -z "$root" ]]; then
    root=$(python3 -c 'import nvidia.cudnn, os; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null || true)
  fi
  if [[ -n "$root" && -f "$root/include/cudnn.h" ]]; then
    export MQ_CUDNN_ROOT="$root"
    export LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "gpu-deps: cuDNN from $root"
  fi
fi
