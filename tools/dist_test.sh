#!/usr/bin/env bash
# Distributed testing with torchrun (`python -m torch.distributed.run`).
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$SCRIPT_DIR/dist_run.sh" test.py "$3" "$1" "$2" \
    --launcher pytorch "${@:4}"
