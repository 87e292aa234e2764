#!/usr/bin/env bash
# Two (or more) nodes with mpirun and a hostfile (see hosts.example).
# The data must be readable at the same path on every node (shared FS or a local copy);
# Horovod shards it by rank (whole files when the file count divides by the ranks).
# The NCCL settings and fp16 apply to a GPU build of Horovod; a CPU build (see
# scripts/launch/horovod_build.sh) runs fp32 over MPI alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/launch/horovod_build.sh

HOSTFILE="${HOSTFILE:-scripts/launch/hosts.example}"
NUM_RANKS="${NUM_RANKS:-16}"           # total GPUs over all nodes
NETWORK_IF="${NETWORK_IF:-eth0}"       # the interface the nodes reach each other on
PRECISION="${PRECISION:-$DEFAULT_PRECISION}"
# The hostfile's slots decide the ranks per node: never oversubscribe here.
mpirun_build_args 0 NCCL_SOCKET_IFNAME="$NETWORK_IF"

launch mpirun -np "$NUM_RANKS" --hostfile "$HOSTFILE" --allow-run-as-root \
  -bind-to none -map-by slot \
  -mca pml ob1 -mca btl ^openib -mca btl_tcp_if_include "$NETWORK_IF" \
  "${MPIRUN_BUILD_ARGS[@]}" -x LD_LIBRARY_PATH -x PATH \
  "$PWD/.venv/bin/python" "$PWD/train_image_classifiers.py" \
    --model_name=resnet_v1_50 \
    --dataset_name=imagenet --dataset_dir=/data/imagenet_tfrecords --labels_offset=1 \
    --batch_size=64 \
    --optimizer=momentum --learning_rate=0.1 --warmup_steps=4000 \
    --precision="$PRECISION" --gradient_compression=fp16 \
    --stop_at_step=50000 \
    --train_dir=/shared/runs/resnet_v1_50_16gpu \
    "$@"
