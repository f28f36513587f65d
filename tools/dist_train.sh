#!/usr/bin/env bash
# Distributed training with torchrun (`python -m torch.distributed.run`).
# Usage: bash tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]
# On a machine without a GPU, NUM_PROCS CPU processes train over gloo.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$SCRIPT_DIR/dist_run.sh" train.py "$2" "$1" --launcher pytorch \
    "${@:3}"
