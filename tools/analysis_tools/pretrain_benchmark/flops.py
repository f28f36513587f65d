# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""FLOPs of one step under ``torch.utils.flop_counter.FlopCounterMode``."""
from typing import Dict, Tuple

import torch
from torch.utils import flop_counter


__all__ = ['step_flops']


def _cpu_flash(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query, key, value)


def _cpu_flash_bwd(grad_out, query, key, value, *args, out_shape=None,
                   **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


# torch's counter knows the CUDA attention kernels but not the CPU one.
_CUSTOM_FLOPS = {
    # FlopCounterMode applies shape_wrapper to custom entries itself.
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward:
    _cpu_flash_bwd,
}


def step_flops(model, optim_wrapper, data: dict,
               step_fn) -> Tuple[int, Dict[str, int]]:
    """FLOPs of one step (forward + backward) and their split by part."""
    counter = flop_counter.FlopCounterMode(
        display=False, depth=3, custom_mapping=_CUSTOM_FLOPS)
    with counter:
        step_fn(model, optim_wrapper, data)
    by_module = {
        k: sum(v.values())
        for k, v in counter.get_flop_counts().items()
    }
    root = type(model).__name__

    def mod(*names):
        return sum(by_module.get('.'.join((root, ) + n), 0) for n in names)

    split = {
        'student backbone': mod(('backbone', )),
        'teacher backbone': mod(('teacher', 'backbone')),
        'neck': mod(('neck', ), ('teacher', 'neck')),
        'heads': mod(('head', ), ('patch_head', ), ('teacher', 'head'),
                     ('teacher', 'patch_head')),
    }
    return counter.get_total_flops(), split
