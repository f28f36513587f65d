# Copyright (c) selfpatch_mm contributors. All rights reserved.
import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from .selfpatch_amp_optim_wrapper import SelfPatchAmpOptimWrapper
from .selfpatch_optim_wrapper import SelfPatchOptimWrapper

__all__ = ['AutoAmpSelfPatchOptimWrapper']

_AMP_ONLY_KEYS = ('dtype', 'loss_scale')


@OPTIM_WRAPPERS.register_module()
def AutoAmpSelfPatchOptimWrapper(**kwargs) -> OptimWrapper:
    """Build :class:`SelfPatchAmpOptimWrapper` when CUDA is available (the
    official recipe trains in fp16; ``dtype='bfloat16'`` selects bf16) and
    the fp32 :class:`SelfPatchOptimWrapper` otherwise, so one config serves
    GPU clusters and CPU runs. On the CPU, ``dtype`` and ``loss_scale`` are
    ignored; ``tools/train.py --amp --amp-dtype bf16`` turns CPU autocast
    on explicitly."""
    if torch.cuda.is_available():
        return SelfPatchAmpOptimWrapper(**kwargs)
    for key in _AMP_ONLY_KEYS:
        kwargs.pop(key, None)
    return SelfPatchOptimWrapper(**kwargs)
