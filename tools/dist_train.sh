#!/usr/bin/env bash
# Distributed training with torchrun (`python -m torch.distributed.run`).
# Usage: bash tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]
# On a machine without a GPU, NUM_PROCS CPU processes train over gloo.
set -euo pipefail

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

PYTHONPATH="$SCRIPT_DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$SCRIPT_DIR/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
