#!/usr/bin/env bash
# Training on a SLURM cluster.
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#     [SIGNAL_LEAD=120] [REQUEUE=1] \
#     bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
#
# Preemptible clusters (docs/checkpoints_and_resume.md, "Running on a
# preemptible cluster"):
# * srun gets --signal=USR1@$SIGNAL_LEAD: SIGNAL_LEAD seconds before the
#   time limit every rank receives SIGUSR1, saves latest.pth at the next
#   iteration and exits with code 75 (PreemptionHook). SIGNAL_LEAD=0 leaves
#   the option out.
# * SELFPATCH_AUTO_RESUME=1 is exported: train.py resumes from WORK_DIR's
#   newest checkpoint when there is one (starts fresh otherwise), so a
#   requeued job continues by itself.
# * In an sbatch job (SLURM_JOB_ID set), exit code 75 requeues the job with
#   `scontrol requeue` unless REQUEUE=0; submit with `sbatch --requeue` so
#   that the scheduler's own preemption requeues it too.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIGNAL_LEAD=${SIGNAL_LEAD:-120}
PREEMPTED=75
if [[ "$SIGNAL_LEAD" != 0 ]]; then
    SRUN_ARGS="--signal=USR1@$SIGNAL_LEAD${SRUN_ARGS:+ $SRUN_ARGS}"
fi
export SRUN_ARGS
export SELFPATCH_AUTO_RESUME=${SELFPATCH_AUTO_RESUME:-1}

status=0
bash "$SCRIPT_DIR/slurm_run.sh" train.py "$1" "$2" "$3" \
    --work-dir="$4" --launcher slurm "${@:5}" || status=$?
if [[ $status == "$PREEMPTED" && -n "${SLURM_JOB_ID:-}" \
        && "${REQUEUE:-1}" != 0 ]]; then
    echo "[slurm_train.sh] preempted (exit $PREEMPTED): requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
