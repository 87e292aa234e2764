#!/usr/bin/env bash
# One GPU (or the CPU): a plain process, no launcher, no Horovod needed.
# Edit the flags, or put them in a flagfile and pass --flagfile=job.flags.
set -euo pipefail
cd "$(dirname "$0")/../.."

export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"   # which GPU

.venv/bin/python train_image_classifiers.py \
  --model_name=resnet_v1_50 \
  --dataset_name=imagenet --dataset_dir=/data/imagenet_tfrecords --labels_offset=1 \
  --batch_size=64 \
  --optimizer=momentum --learning_rate=0.1 --warmup_steps=500 \
  --precision=fp16 \
  --stop_at_step=100000 \
  --train_dir=runs/resnet_v1_50_1gpu \
  "$@"
