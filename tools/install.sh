#!/usr/bin/env bash
# Install selfpatch_mm and its whole stack into the ACTIVE Python environment.
#
#   python3 -m venv .venv && source .venv/bin/activate   # or conda activate
#   bash tools/install.sh
#
# Uses the `python` on PATH (override with PYTHON=/path/to/python) and its pip.
# Safe to run again: steps whose result is already importable are skipped.
#
# Steps (pins in requirements/mminstall.txt and requirements/runtime.txt):
#   1. torch 2.13 + torchvision 0.28, unless a working pair is importable.
#      `torch===2.13.0` (arbitrary equality) so that pip never takes a local
#      CPU-only `2.13.0+cpu` wheel, with which torchvision cannot load.
#   2. setuptools>=77.0.3,<81 (pkg_resources is still needed), ninja, wheel.
#   3. mmcv 2.1.0 with ops, built against the installed torch
#      (--no-build-isolation). Without a GPU, a prebuilt wheel found through
#      PIP_FIND_LINKS / --find-links is used (seconds instead of 10-40 min).
#      With a GPU, mmcv is always built from source with CUDA ops
#      (FORCE_CUDA=1, --no-binary mmcv), since such wheels have CPU ops only.
#   4. mmengine, mmpretrain, mmdet, mmsegmentation, pycocotools, ftfy, regex.
#   5. test requirements, then `pip install -e .` (this repository).
#
# Environment knobs:
#   PYTHON          interpreter to install into (default: python on PATH)
#   MAX_JOBS        parallel compile jobs for mmcv (default 2)
#   SELFPATCH_MMCV_CUDA  auto (default) | 1 (force CUDA build) | 0 (CPU ops)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

if [[ -z "${PYTHON:-}" ]]; then
    if command -v python >/dev/null 2>&1; then
        PYTHON=python
    else
        PYTHON=python3
    fi
fi
PIP=("$PYTHON" -m pip)

TORCH_SPEC='torch===2.13.0'
TORCHVISION_SPEC='torchvision==0.28.0'
MMCV_VERSION='2.1.0'

log() { echo "[install.sh] $*"; }
run() {
    # Print the command (arguments with shell metacharacters single-quoted
    # so that it can be pasted), then run it.
    local line='+' arg
    for arg in "$@"; do
        if [[ "$arg" =~ ^[A-Za-z0-9_./=:,@%+-]+$ ]]; then
            line+=" $arg"
        else
            line+=" '${arg//\'/\'\\\'\'}'"
        fi
    done
    echo "$line"
    "$@"
}

log "python: $(command -v "$PYTHON") ($("$PYTHON" --version 2>&1))"
if [[ -z "${VIRTUAL_ENV:-}" && -z "${CONDA_PREFIX:-}" ]]; then
    log "warning: no virtualenv/conda env is active; installing into" \
        "$("$PYTHON" -c 'import sys; print(sys.prefix)')"
fi
log "PIP_FIND_LINKS=${PIP_FIND_LINKS:-<unset>}"

# ---------------------------------------------------------------- 1. torch
torch_ok() {
    # A torch 2.13.x whose torchvision 0.28 imports and runs its C++ ops
    # (a CPU-only `+cpu` torch fails here: torchvision::nms is missing).
    "$PYTHON" - <<'PY' >/dev/null 2>&1
import torch, torchvision
assert torch.__version__.split('+')[0].startswith('2.13.'), torch.__version__
assert torchvision.__version__.startswith('0.28.'), torchvision.__version__
boxes = torch.tensor([[0., 0., 1., 1.], [0., 0., 1., 1.]])
torchvision.ops.nms(boxes, torch.tensor([1., 0.5]), 0.5)
PY
}

if torch_ok; then
    log "1/5 torch: keeping $("$PYTHON" -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__)')"
else
    log "1/5 torch: installing $TORCH_SPEC $TORCHVISION_SPEC"
    run "${PIP[@]}" install "$TORCH_SPEC" "$TORCHVISION_SPEC"
    torch_ok || { log "error: torch/torchvision still not importable"; exit 1; }
fi

# ------------------------------------------------------- 2. build tooling
log "2/5 build tools"
run "${PIP[@]}" install "setuptools>=77.0.3,<81" ninja wheel

# ---------------------------------------------------------------- 3. mmcv
has_gpu() {
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        return 0
    fi
    "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
        >/dev/null 2>&1
}

case "${SELFPATCH_MMCV_CUDA:-auto}" in
    1) MMCV_CUDA=1 ;;
    0) MMCV_CUDA=0 ;;
    auto) if has_gpu; then MMCV_CUDA=1; else MMCV_CUDA=0; fi ;;
    *) log "error: SELFPATCH_MMCV_CUDA must be auto, 0 or 1"; exit 2 ;;
esac

mmcv_ok() {
    # mmcv 2.1.0 whose compiled ops load against the installed torch; for a
    # CUDA build also require that the ops were compiled with CUDA.
    MMCV_CUDA="$MMCV_CUDA" "$PYTHON" - <<'PY' >/dev/null 2>&1
import os
import mmcv
assert mmcv.__version__ == '2.1.0', mmcv.__version__
import torch
from mmcv.ops import get_compiling_cuda_version, nms
nms(torch.rand(4, 4).sort(1).values, torch.rand(4), 0.5)
if os.environ['MMCV_CUDA'] == '1':
    assert get_compiling_cuda_version() != 'not available'
PY
}

if mmcv_ok; then
    log "3/5 mmcv: keeping the installed mmcv $MMCV_VERSION (ops load)"
else
    if "${PIP[@]}" show mmcv >/dev/null 2>&1; then
        # Wrong version, a build for another torch, or CPU-only ops on a GPU
        # machine: remove it so that the right one is built/installed.
        run "${PIP[@]}" uninstall -y mmcv
    fi
    MMCV_ARGS=(install --no-build-isolation "mmcv==$MMCV_VERSION"
               "mmengine==0.10.7")
    if [[ "$MMCV_CUDA" == 1 ]]; then
        log "3/5 mmcv: GPU present -> building from source with CUDA ops"
        if ! command -v nvcc >/dev/null 2>&1 && [[ -z "${CUDA_HOME:-}" ]]; then
            log "warning: nvcc not on PATH and CUDA_HOME unset; the CUDA" \
                "build of mmcv needs the CUDA toolkit"
        fi
        export FORCE_CUDA=1
        # Never take a prebuilt (CPU-ops) wheel from find-links or the cache.
        MMCV_ARGS+=(--no-binary mmcv --no-cache-dir)
    else
        log "3/5 mmcv: no GPU -> CPU ops (a prebuilt wheel from" \
            "PIP_FIND_LINKS is used if there is one; else a 10-40 min build)"
    fi
    echo "+ MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2}${FORCE_CUDA:+ FORCE_CUDA=$FORCE_CUDA} ${PIP[*]} ${MMCV_ARGS[*]}"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" "${MMCV_ARGS[@]}"
    mmcv_ok || { log "error: mmcv $MMCV_VERSION ops do not load"; exit 1; }
fi

# ------------------------------------------------------ 4. OpenMMLab + deps
log "4/5 OpenMMLab packages and runtime requirements"
run "${PIP[@]}" install -r requirements/runtime.txt

# ---------------------------------------------------- 5. tests + this repo
log "5/5 test requirements and selfpatch_mm (editable)"
run "${PIP[@]}" install -r requirements/tests.txt
# No build isolation: the build tools are installed already, and an
# isolated build would fetch the newest setuptools.
run "${PIP[@]}" install --no-build-isolation -e .

# torch must not have been replaced by a later step.
torch_ok || { log "error: torch/torchvision broke during the install"; exit 1; }
log "check: importing the stack"
"$PYTHON" - <<'PY'
import mmcv, mmdet, mmengine, mmpretrain, mmseg, torch, torchvision
import selfpatch_mm
print('torch', torch.__version__, '| torchvision', torchvision.__version__,
      '| mmcv', mmcv.__version__, '| mmengine', mmengine.__version__,
      '| mmpretrain', mmpretrain.__version__, '| mmdet', mmdet.__version__,
      '| mmseg', mmseg.__version__, '| selfpatch_mm', selfpatch_mm.__version__)
PY
log "done"
