#!/usr/bin/env bash
# All GPUs of one node: one process per GPU, started by mpirun; Horovod pins each rank to
# the GPU of its local rank, averages gradients and broadcasts the start weights.
# --batch_size is per GPU; the learning rate scales with the number of ranks (--lr_scaling).
# On a CPU build of Horovod (see scripts/launch/horovod_build.sh) the same ranks run on the
# CPU: fp32, and mpirun oversubscribes when there are more ranks than cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/launch/horovod_build.sh

NUM_GPUS="${NUM_GPUS:-8}"
PRECISION="${PRECISION:-$DEFAULT_PRECISION}"
mpirun_build_args "$NUM_GPUS"

# -bind-to none / -map-by slot: let each rank use the cores it needs (Horovod's advice).
# -x forwards environment variables to every rank. Drop --allow-run-as-root if not root.
launch mpirun -np "$NUM_GPUS" --allow-run-as-root \
  -bind-to none -map-by slot \
  "${MPIRUN_BUILD_ARGS[@]}" -x LD_LIBRARY_PATH -x PATH \
  .venv/bin/python train_image_classifiers.py \
    --model_name=resnet_v1_50 \
    --dataset_name=imagenet --dataset_dir=/data/imagenet_tfrecords --labels_offset=1 \
    --batch_size=64 \
    --optimizer=momentum --learning_rate=0.1 --warmup_steps=2000 \
    --precision="$PRECISION" --gradient_compression=fp16 \
    --stop_at_step=100000 \
    --train_dir=runs/resnet_v1_50_8gpu \
    "$@"
