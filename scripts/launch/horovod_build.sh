# Sourced by the launch scripts (run from the checkout): which Horovod build scripts/setup.sh
# installed, and the launcher settings that match it.
#
# Reads $HOROVOD_BUILD_ENV (default .venv/horovod_build.env, written by setup.sh from
# scripts/horovod_build_env.sh); without that file it asks the installed Horovod.
# Sets:
#   TFZOO_HOROVOD_VARIANT  nccl (GPU build) or cpu
#   DEFAULT_PRECISION      fp16 on the GPU build (loss-scaled, the GPU path), fp32 on CPU
#   MPIRUN_BUILD_ARGS      mpirun options of this build, see mpirun_build_args
# and defines `launch`, which runs a command, or prints it when TFZOO_LAUNCH_DRY_RUN=1.

HOROVOD_BUILD_ENV="${HOROVOD_BUILD_ENV:-.venv/horovod_build.env}"
if [[ -f "$HOROVOD_BUILD_ENV" ]]; then
  # shellcheck disable=SC1090
  source "$HOROVOD_BUILD_ENV"
elif .venv/bin/python -c 'import horovod.tensorflow as hvd; assert hvd.nccl_built()' 2>/dev/null; then
  TFZOO_HOROVOD_VARIANT=nccl
else
  TFZOO_HOROVOD_VARIANT=cpu
fi
case "${TFZOO_HOROVOD_VARIANT:-}" in
  nccl) DEFAULT_PRECISION=fp16 ;;
  cpu)
    DEFAULT_PRECISION=fp32
    echo "[launch] Horovod here is a CPU build (no NCCL): ranks reduce gradients over MPI on" \
      "the CPU; scripts/setup.sh builds for GPU where CUDA and NCCL are installed." >&2
    ;;
  *)
    echo "[launch] $HOROVOD_BUILD_ENV: TFZOO_HOROVOD_VARIANT=${TFZOO_HOROVOD_VARIANT:-} is not" \
      "nccl or cpu; re-run scripts/setup.sh" >&2
    exit 1
    ;;
esac

# mpirun_build_args RANKS_ON_THIS_NODE [NAME=value ...]: sets MPIRUN_BUILD_ARGS.
# GPU build: forwards NCCL_DEBUG=WARN and the given NCCL_* settings to every rank.
# CPU build: NCCL settings mean nothing; with more ranks than this node's cores, lets
# mpirun oversubscribe and makes a rank waiting in a collective yield its core (a rank
# spinning in an allreduce starves the others otherwise).
mpirun_build_args() {
  local ranks="$1"
  shift
  MPIRUN_BUILD_ARGS=()
  if [[ "$TFZOO_HOROVOD_VARIANT" == nccl ]]; then
    MPIRUN_BUILD_ARGS+=(-x NCCL_DEBUG="${NCCL_DEBUG:-WARN}")
    local setting
    for setting in "$@"; do
      MPIRUN_BUILD_ARGS+=(-x "$setting")
    done
  elif ((ranks > $(nproc))); then
    MPIRUN_BUILD_ARGS+=(--oversubscribe --mca mpi_yield_when_idle 1)
  fi
}

launch() {
  if [[ "${TFZOO_LAUNCH_DRY_RUN:-}" == 1 ]]; then
    printf '%q ' "$@"
    echo
  else
    exec "$@"
  fi
}
