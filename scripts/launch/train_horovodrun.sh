#!/usr/bin/env bash
# The same job with Horovod's own launcher. --gloo needs no MPI at all; drop it to use MPI.
# One host: -H localhost:4. Several: -H node1:8,node2:8 (password-less ssh between them).
set -euo pipefail
cd "$(dirname "$0")/../.."

HOSTS="${HOSTS:-localhost:2}"
NUM_RANKS="${NUM_RANKS:-2}"

.venv/bin/horovodrun --gloo -np "$NUM_RANKS" -H "$HOSTS" \
  .venv/bin/python train_image_classifiers.py \
    --model_name=resnet_v1_50 --dataset_name=mock \
    --batch_size=32 --precision=bf16 \
    --stop_at_step=200 \
    --train_dir=runs/resnet_v1_50_horovodrun \
    "$@"
