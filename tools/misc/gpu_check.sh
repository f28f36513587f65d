#!/usr/bin/env bash
# The prepared GPU check: the CUDA tests, then the pretraining benchmark
# table (SelfPatch, the DINO ablation and the official-shaped step at the
# paper's crops; bf16 at batch 32/64/128 and fp16 at 128; what fused AdamW
# and SDPA buy, and the step compiled), all in OUT_DIR/gpu_check.json.
# Planned at about 8 minutes on one H100/H200 (not yet run on one: see
# docs/benchmarks.md).
#
#   bash tools/misc/gpu_check.sh [OUT_DIR]        # default work_dirs/gpu_check
#
# Without a GPU it runs the same steps at CPU scale (the demo config, batch
# 2, bf16): the CUDA tests are then skipped, and the run checks only that
# the script and the benchmark work. CI runs it that way.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"
OUT=${1:-work_dirs/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python}
BENCH=(tools/analysis_tools/benchmark_pretrain.py)

if "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    DEVICE=cuda
    CONFIG=configs/selfpatch/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py
    # bf16: every batch, plus what fused AdamW, SDPA and torch.compile buy
    # at the largest; fp16 (the official dtype): the paper's batch. 15 runs
    # of ~25 s (the compiled one longer: it compiles first, untimed).
    SWITCHES="fused-adamw no-sdpa compile"
    RUNS=("bf16 --batch-sizes 32 64 128 --sweep-switches $SWITCHES"
          "fp16 --batch-sizes 128")
    ITERS=(--iters 5 --warmup 2)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv \
        | tee "$OUT/gpu.txt"
else
    DEVICE=cpu
    CONFIG=configs/selfpatch/selfpatch_vit-tiny-p8_1xb8-2e_demo.py
    RUNS=("bf16 --batch-sizes 2 --sweep-switches no-sdpa compile")
    ITERS=(--iters 1 --warmup 0 --no-breakdown)
    echo "[gpu_check] no GPU: CPU-scale run (demo config, batch 2)"
fi

echo "[gpu_check] CUDA tests"
# Exit code 5 (every test deselected or skipped) is no failure here.
"$PY" -m pytest -m cuda tests/test_engine/test_cuda_amp.py -q -rs \
    -p no:cacheprovider 2>&1 | tee "$OUT/cuda_tests.txt" || \
    [[ ${PIPESTATUS[0]} -eq 5 ]]

DTYPES=()
for run in "${RUNS[@]}"; do
    read -r dtype options <<< "$run"
    DTYPES+=("$dtype")
    echo "[gpu_check] benchmark $run"
    # shellcheck disable=SC2086
    "$PY" "${BENCH[@]}" "$CONFIG" --device "$DEVICE" --amp "$dtype" \
        "${ITERS[@]}" --sweep --with-official $options \
        --json-out "$OUT/benchmark_$dtype.json" \
        | grep -v '^{' | tee "$OUT/benchmark_$dtype.txt"
done

"$PY" - "$OUT" "$DEVICE" "${DTYPES[@]}" <<'PYEOF'
import json, sys, pathlib
out, device, dtypes = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
summary = dict(device=device,
               cuda_tests=(out / 'cuda_tests.txt').read_text().strip()
               .splitlines()[-1],
               benchmarks={d: json.loads((out / f'benchmark_{d}.json')
                                         .read_text())['sweep']
                           for d in dtypes})
(out / 'gpu_check.json').write_text(json.dumps(summary, indent=1))
print(f'[gpu_check] wrote {out / "gpu_check.json"}')
PYEOF
