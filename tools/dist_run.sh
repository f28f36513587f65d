#!/usr/bin/env bash
# torchrun (`python -m torch.distributed.run`) of a tool of this folder,
# shared by dist_train.sh and dist_test.sh (mmpretrain's launcher layout).
# Usage: bash tools/dist_run.sh TOOL NUM_PROCS TOOL_ARGS... (with --launcher)
# Env: NNODES, NODE_RANK, PORT, MASTER_ADDR. Without a GPU, NUM_PROCS CPU
# processes run over gloo.
set -euo pipefail

TOOL=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# exec: a signal to this script (a cluster's SIGTERM) reaches torchrun,
# which passes it on to its workers
PYTHONPATH="$SCRIPT_DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
exec python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$SCRIPT_DIR/$TOOL" \
    "${@:3}"
