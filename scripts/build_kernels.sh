#!/usr/bin/env bash
# Compiles tfzoo's fused CPU kernels (training/kernels/fused_ops.cc) against the TensorFlow
# of .venv into .venv/lib/tfzoo/fused_ops.so, with the stamp training/fused_ops.py checks
# (the source's sha256 and the TensorFlow version). scripts/setup.sh runs it; run it again
# after changing the source. Skipped when the stamp matches.
#
# Compiled for AVX2 + FMA + F16C (every x86-64 server of the last decade; the kernels are
# bound by memory, so wider vectors would not pay): training/fused_ops.py checks
# /proc/cpuinfo before loading, so a checkout moved to an older CPU falls back to plain
# TensorFlow ops instead of crashing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
OUT_DIR="$VENV/lib/tfzoo"
LIBRARY="$OUT_DIR/fused_ops.so"
log() { echo "[build_kernels] $*" >&2; }

cd "$ROOT"
stamp="$("$VENV/bin/python" -c 'from training import fused_ops; print(fused_ops.build_stamp())' 2>/dev/null)"
if [[ -f "$LIBRARY" && "$(cat "$LIBRARY.stamp" 2>/dev/null)" == "$stamp" ]]; then
  exit 0
fi
read -r -a compile_flags < <("$VENV/bin/python" -c \
  'import tensorflow as tf; print(" ".join(tf.sysconfig.get_compile_flags()))' 2>/dev/null)
read -r -a link_flags < <("$VENV/bin/python" -c \
  'import tensorflow as tf; print(" ".join(tf.sysconfig.get_link_flags()))' 2>/dev/null)
mkdir -p "$OUT_DIR"
log "compiling training/kernels/fused_ops.cc (about 30 s)"
# TensorFlow's headers as system headers (-isystem): their warnings are not ours; -Wall
# stays on for our own code.
compile_flags=("${compile_flags[@]/#-I/-isystem}")
g++ -shared -fPIC -O3 -mavx2 -mfma -mf16c -Wall \
  "${compile_flags[@]}" training/kernels/fused_ops.cc -o "$LIBRARY.tmp" "${link_flags[@]}"
# Loads, or the build failed: a library that does not load must not get a stamp.
TFZOO_FUSED_OPS="$LIBRARY.tmp" "$VENV/bin/python" - "$LIBRARY.tmp" <<'PY' 2>/dev/null
import sys
import tensorflow as tf
lib = tf.load_op_library(sys.argv[1])
assert hasattr(lib, "tfzoo_gelu") and hasattr(lib, "tfzoo_layer_norm_grad"), dir(lib)
PY
mv -f "$LIBRARY.tmp" "$LIBRARY"
echo "$stamp" >"$LIBRARY.stamp"
log "built $LIBRARY"
