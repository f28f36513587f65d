# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Parts of ``tools/analysis_tools/benchmark_pretrain.py``: the step's
inputs and model, its timers, its FLOP count, the compiled-step timing and
its report. They live next to the tool, not in the installed package."""
from .compiled import compile_first_step, eager_vs_compiled
from .flops import step_flops
from .report import format_sweep, format_table
from .step import build_step, crop_sizes, synthetic_batch, train_step
from .timing import PARTS, Breakdown, matmul_rate, sync

__all__ = [
    'PARTS', 'Breakdown', 'build_step', 'compile_first_step', 'crop_sizes',
    'eager_vs_compiled', 'format_sweep', 'format_table', 'matmul_rate',
    'step_flops', 'sync', 'synthetic_batch',
    'train_step'
]
