# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""tools/misc/gpu_check.sh at CPU scale: the parts CI can run (the CUDA
tests skip; the benchmark sweep runs on the demo config)."""
import json
from pathlib import Path

import pytest
import torch
from helpers import run_tool, tool_env


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(),
                    reason='with a GPU the script runs the full check')
def test_gpu_check_script_cpu_scale(tmp_path: Path) -> None:
    out = tmp_path / 'gpu_check'
    run_tool('tools/misc/gpu_check.sh', out, env=tool_env(threads=None),
             timeout=1500)
    summary = json.loads((out / 'gpu_check.json').read_text())
    assert summary['device'] == 'cpu'
    assert 'skipped' in summary['cuda_tests']
    runs = summary['benchmarks']['bf16']
    assert [(r['variant'], r['official'], r['sdpa'], r['compile'])
            for r in runs] == [
        ('selfpatch', False, True, False), ('dino', False, True, False),
        ('selfpatch', True, False, False), ('selfpatch', False, False, False),
        ('selfpatch', False, True, True)]
    # the compiled row: its first step compiled the demo's 12 graphs
    assert runs[-1]['compiled_graphs'] == 12 and runs[-1]['graph_breaks'] == 0
    assert runs[-1]['compile_speedup'] > 0
    for r in runs:
        assert 'error' not in r, r
        assert r['amp'] == 'bf16' and r['batch_size'] == 2
        assert r['sec_per_iter'] > 0 and r['matmul_dtype'] == 'bfloat16'
    assert 'official' in (out / 'benchmark_bf16.txt').read_text()
