#!/usr/bin/env bash
# Idempotent set-up of tfzoo on a Debian machine with Python 3.11 (run as root, or with sudo).
#
#   1. Debian packages: Open MPI (Horovod's MPI controller), a C++ toolchain and CMake.
#   2. A virtual environment in the checkout (.venv) with the pinned requirements.
#   3. Horovod 0.28.1 built from source against the installed TensorFlow, with the one
#      fix TF 2.21 needs (see ../shared/DESIGN.md): drop xla_mpi_ops.cc from the build.
#      GPU build (NCCL operations) when a CUDA toolkit and NCCL are found, CPU build (MPI
#      and Gloo) otherwise: scripts/horovod_build_env.sh decides, and says why; setup writes
#      its answer to .venv/horovod_build.env for the launch scripts.
#      The built wheel is cached in ~/.cache/tfzoo (keyed by TF version, this script and
#      the build variant) so a second checkout on the same machine does not rebuild it.
#   (2b.) tfzoo's fused CPU kernels compiled against that TensorFlow (scripts/build_kernels.sh).
#
# Each step is skipped when its stamp in .venv/ matches; re-running costs a few seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
HOROVOD_VERSION=0.28.1
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/tfzoo"
log() { echo "[setup] $*" >&2; }

# ---------------------------------------------------------------- 1. Debian packages
# man-db, groff-base: render the manual pages (the BERT corpus); manpages, manpages-dev: its
# sections 2-7 (system calls, library calls, files, overviews).
DEB_PACKAGES=(libopenmpi-dev openmpi-bin g++ make cmake git libtcmalloc-minimal4
  man-db groff-base manpages manpages-dev)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------- 2. venv + requirements
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
REQ_HASH="$(sha256sum "$ROOT/requirements.txt" | cut -c1-16)"
if [[ "$(cat "$VENV/.requirements.stamp" 2>/dev/null)" != "$REQ_HASH" ]]; then
  log "installing pinned requirements"
  "$VENV/bin/pip" install -q --upgrade pip wheel 'setuptools<81'
  "$VENV/bin/pip" install -q -r "$ROOT/requirements.txt"
  echo "$REQ_HASH" >"$VENV/.requirements.stamp"
fi

# ------------------------------------------------ 2b. tfzoo's fused CPU kernels
# GELU, dropout and layer norm in one pass each (training/kernels/fused_ops.cc); skipped
# when built for this source and TensorFlow.
bash "$ROOT/scripts/build_kernels.sh"

# ---------------------------------------------------------------- 3. Horovod from source
TF_VERSION="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("tensorflow"))')"
# GPU (NCCL) or CPU build: TFZOO_HOROVOD_VARIANT, _REASON, _BUILD_ID and the HOROVOD_* variables.
HVD_BUILD_ENV="$(bash "$ROOT/scripts/horovod_build_env.sh")"
eval "$HVD_BUILD_ENV"
case "$TFZOO_HOROVOD_VARIANT" in
  nccl) HVD_WHAT="GPU build: NCCL operations ($TFZOO_HOROVOD_REASON)" ;;
  *) HVD_WHAT="CPU build: MPI and Gloo operations, no NCCL ($TFZOO_HOROVOD_REASON)" ;;
esac
# The key hashes this section (the build recipe) only: editing the rest of the file
# does not rebuild Horovod. The build id names the variant, so a CPU wheel never serves
# a GPU build (or the other way round).
HVD_RECIPE="$(sed -n '/^# -* 3\. Horovod from source/,$p' "$0" | sha256sum | cut -c1-12)"
HVD_KEY="hvd${HOROVOD_VERSION}-tf${TF_VERSION}-${TFZOO_HOROVOD_BUILD_ID}-${HVD_RECIPE}"
if [[ "$(cat "$VENV/.horovod.stamp" 2>/dev/null)" != "$HVD_KEY" ]]; then
  WHEELS="$CACHE/wheels/$HVD_KEY"
  if ! ls "$WHEELS"/horovod-*.whl >/dev/null 2>&1; then
    log "building Horovod $HOROVOD_VERSION against TensorFlow $TF_VERSION, $HVD_WHAT (about 5 minutes on 2 cores)"
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    "$VENV/bin/pip" download -q --no-deps --no-binary :all: -d "$BUILD" "horovod==$HOROVOD_VERSION"
    tar -xzf "$BUILD"/horovod-*.tar.gz -C "$BUILD"
    SRC="$BUILD/horovod-$HOROVOD_VERSION"
    # The fix: TF 2.21 moved the XLA headers; xla_mpi_ops.cc only serves XLA on GPU.
    sed -i '/xla_mpi_ops\.cc/d' "$SRC/horovod/tensorflow/CMakeLists.txt"
    if grep -q 'xla_mpi_ops' "$SRC/horovod/tensorflow/CMakeLists.txt"; then
      log "could not remove xla_mpi_ops.cc from horovod/tensorflow/CMakeLists.txt"; exit 1
    fi
    mkdir -p "$WHEELS.partial"
    # The build sees the HOROVOD_* variables of horovod_build_env.sh and no others (the
    # cache key hashes them); set -a exports them to the build only.
    (
      for name in $(compgen -e); do if [[ "$name" == HOROVOD_* ]]; then unset "$name"; fi; done
      set -a
      eval "$HVD_BUILD_ENV"
      HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
        MAKEFLAGS="-j$(nproc)" \
        "$VENV/bin/pip" wheel -q --no-deps --no-build-isolation -w "$WHEELS.partial" "$SRC"
    ) >"$BUILD/build.log" 2>&1 || { tail -50 "$BUILD/build.log" >&2; log "Horovod build failed"; exit 1; }
    rm -rf "$WHEELS"; mv "$WHEELS.partial" "$WHEELS"
  fi
  "$VENV/bin/pip" install -q --no-deps --force-reinstall "$WHEELS"/horovod-*.whl
  "$VENV/bin/python" -c 'import horovod.tensorflow as hvd; assert hvd.mpi_built() and hvd.gloo_built()' \
    || { log "Horovod installed but its TensorFlow ops do not load"; exit 1; }
  if [[ "$TFZOO_HOROVOD_VARIANT" == nccl ]]; then
    "$VENV/bin/python" -c 'import horovod.tensorflow as hvd; assert hvd.nccl_built()' \
      || { log "Horovod installed without NCCL, though a GPU build was asked for"; exit 1; }
  fi
  log "installed Horovod $HOROVOD_VERSION, $HVD_WHAT"
  echo "$HVD_KEY" >"$VENV/.horovod.stamp"
fi
# What is installed, for the launch scripts (scripts/launch/horovod_build.sh reads it).
{ echo "# Written by scripts/setup.sh: the Horovod build installed in this .venv."
  echo "$HVD_BUILD_ENV"; } >"$VENV/horovod_build.env"
log "ready: $VENV (TensorFlow $TF_VERSION, Horovod $HOROVOD_VERSION, ${TFZOO_HOROVOD_VARIANT^^} build)"
