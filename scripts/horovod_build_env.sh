#!/usr/bin/env bash
# Which Horovod build this machine gets: prints the variables of that build, one KEY=value
# line each (shell-quoted), for scripts/setup.sh to build with and the launch scripts to read.
#
#   bash scripts/horovod_build_env.sh
#
# GPU build (Horovod's collective operations on NCCL) when a CUDA toolkit and NCCL are both
# found; CPU build (MPI and Gloo) otherwise:
#   CUDA: $CUDA_HOME (or $CUDA_PATH), else the directory above the nvcc on PATH, else
#         /usr/local/cuda; it counts when it has bin/nvcc and include/cuda_runtime.h.
#   NCCL: $NCCL_HOME, else the CUDA directory, else /usr (Debian / Ubuntu's libnccl-dev);
#         it counts when it has include/nccl.h and libnccl.so in lib, lib64 or
#         lib/<arch>-linux-gnu.
# TFZOO_HOROVOD_VARIANT chooses: auto (the default, as above), cpu (never NCCL, e.g. a GPU
# machine that trains on its CPU) or nccl (an error unless CUDA and NCCL are both found).
# TFZOO_SYSROOT prefixes the fixed places (/usr/local/cuda, /usr): tests point it at fake trees.
#
# Printed: TFZOO_HOROVOD_VARIANT (cpu | nccl), TFZOO_HOROVOD_REASON (why, for the logs),
# TFZOO_HOROVOD_BUILD_ID (the variant and a hash of the HOROVOD_* lines: part of the wheel
# cache key, so a CPU wheel is never reused for a GPU build), then the HOROVOD_* variables.
set -euo pipefail

SYSROOT="${TFZOO_SYSROOT:-}"
VARIANT="${TFZOO_HOROVOD_VARIANT:-auto}"
case "$VARIANT" in
  auto | cpu | nccl) ;;
  *)
    echo "horovod_build_env.sh: TFZOO_HOROVOD_VARIANT=$VARIANT is not one of: auto, cpu, nccl" >&2
    exit 2
    ;;
esac

# A CUDA toolkit that can compile Horovod's CUDA kernels, or nothing.
find_cuda() {
  local candidates=()
  [[ -n "${CUDA_HOME:-}" ]] && candidates+=("$CUDA_HOME")
  [[ -n "${CUDA_PATH:-}" ]] && candidates+=("$CUDA_PATH")
  local nvcc
  if nvcc="$(command -v nvcc 2>/dev/null)"; then
    nvcc="$(readlink -f "$nvcc")" # /usr/local/bin/nvcc is often a link into the toolkit
    candidates+=("$(dirname "$(dirname "$nvcc")")")
  fi
  candidates+=("$SYSROOT/usr/local/cuda")
  local dir
  for dir in "${candidates[@]}"; do
    if [[ -x "$dir/bin/nvcc" && -f "$dir/include/cuda_runtime.h" ]]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

# NCCL's lib directory under $1, or nothing.
nccl_lib_dir() {
  local dir
  for dir in "$1/lib" "$1/lib64" "$1"/lib/*-linux-gnu; do
    if compgen -G "$dir/libnccl.so*" >/dev/null; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

# "home<TAB>lib directory" of NCCL (headers in home/include), or nothing.
find_nccl() {
  local candidates=()
  [[ -n "${NCCL_HOME:-}" ]] && candidates+=("$NCCL_HOME")
  [[ -n "${1:-}" ]] && candidates+=("$1")
  candidates+=("$SYSROOT/usr")
  local dir lib
  for dir in "${candidates[@]}"; do
    if [[ -f "$dir/include/nccl.h" ]] && lib="$(nccl_lib_dir "$dir")"; then
      printf '%s\t%s\n' "$dir" "$lib"
      return 0
    fi
  done
  return 1
}

cuda="" nccl_home="" nccl_lib=""
if [[ "$VARIANT" != cpu ]]; then
  cuda="$(find_cuda)" || cuda=""
  if found="$(find_nccl "$cuda")"; then
    nccl_home="${found%%$'\t'*}" nccl_lib="${found#*$'\t'}"
  fi
fi

build=()
if [[ -n "$cuda" && -n "$nccl_home" ]]; then
  chosen=nccl
  reason="CUDA at $cuda, NCCL at $nccl_home"
  # Horovod: allreduce, allgather, broadcast and alltoall of GPU tensors go through NCCL.
  build+=(
    "HOROVOD_GPU=CUDA"
    "HOROVOD_GPU_OPERATIONS=NCCL"
    "HOROVOD_CUDA_HOME=$cuda"
    "HOROVOD_NCCL_HOME=$nccl_home"
    "HOROVOD_NCCL_INCLUDE=$nccl_home/include"
    "HOROVOD_NCCL_LIB=$nccl_lib"
    "HOROVOD_NCCL_LINK=SHARED"
  )
else
  chosen=cpu
  if [[ "$VARIANT" == cpu ]]; then
    reason="TFZOO_HOROVOD_VARIANT=cpu"
  elif [[ -z "$cuda" ]]; then
    reason="no CUDA toolkit (bin/nvcc and include/cuda_runtime.h under CUDA_HOME, the nvcc on PATH or /usr/local/cuda)"
  else
    reason="CUDA at $cuda but no NCCL (include/nccl.h and libnccl.so under NCCL_HOME, $cuda or /usr)"
  fi
  if [[ "$VARIANT" == nccl ]]; then
    echo "horovod_build_env.sh: TFZOO_HOROVOD_VARIANT=nccl, but $reason" >&2
    exit 1
  fi
fi
# Horovod: CPU tensors are reduced over MPI in both builds; Gloo is the MPI-free controller.
build+=("HOROVOD_CPU_OPERATIONS=MPI" "HOROVOD_WITH_MPI=1" "HOROVOD_WITH_GLOO=1")

build_hash="$(printf '%s\n' "${build[@]}" | sha256sum | cut -c1-8)"
printf 'TFZOO_HOROVOD_VARIANT=%q\n' "$chosen"
printf 'TFZOO_HOROVOD_REASON=%q\n' "$reason"
printf 'TFZOO_HOROVOD_BUILD_ID=%q\n' "$chosen-$build_hash"
for line in "${build[@]}"; do
  printf '%s=%q\n' "${line%%=*}" "${line#*=}"
done
