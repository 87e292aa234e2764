#!/usr/bin/env bash
# The same job with Horovod's own launcher. --gloo needs no MPI at all; drop it to use MPI.
# One host: -H localhost:4. Several: -H node1:8,node2:8 (password-less ssh between them).
# horovodrun forwards the whole environment; on a GPU build of Horovod NCCL_DEBUG=WARN is
# set, and the job runs fp16 (fp32 on a CPU build, see scripts/launch/horovod_build.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/launch/horovod_build.sh

HOSTS="${HOSTS:-localhost:2}"
NUM_RANKS="${NUM_RANKS:-2}"
PRECISION="${PRECISION:-$DEFAULT_PRECISION}"
if [[ "$TFZOO_HOROVOD_VARIANT" == nccl ]]; then export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"; fi

launch .venv/bin/horovodrun --gloo -np "$NUM_RANKS" -H "$HOSTS" \
  .venv/bin/python train_image_classifiers.py \
    --model_name=resnet_v1_50 --dataset_name=mock \
    --batch_size=32 --precision="$PRECISION" \
    --stop_at_step=200 \
    --train_dir=runs/resnet_v1_50_horovodrun \
    "$@"
