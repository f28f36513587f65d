#!/usr/bin/env bash
# Training on a SLURM cluster.
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#     bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$SCRIPT_DIR/slurm_run.sh" train.py "$1" "$2" "$3" \
    --work-dir="$4" --launcher slurm "${@:5}"
