# Copyright (c) selfpatch_mm contributors. All rights reserved.
from typing import Optional

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from .selfpatch_amp_optim_wrapper import DTYPES, SelfPatchAmpOptimWrapper
from .selfpatch_optim_wrapper import SelfPatchOptimWrapper

__all__ = ['AutoAmpSelfPatchOptimWrapper', 'cuda_has_bf16']

_AMP_ONLY_KEYS = ('dtype', 'loss_scale')
BF16_FALLBACKS = (None, 'fp32')


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def cuda_has_bf16() -> bool:
    """Whether the current CUDA device computes in bf16 natively (compute
    capability 8.0 and newer: A100, H100, ...). Older GPUs (V100, T4) only
    emulate it."""
    if not _cuda_available():
        return False
    return torch.cuda.get_device_capability()[0] >= 8


@OPTIM_WRAPPERS.register_module()
def AutoAmpSelfPatchOptimWrapper(bf16_fallback: Optional[str] = None,
                                 **kwargs) -> OptimWrapper:
    """Build :class:`SelfPatchAmpOptimWrapper` when CUDA is available (the
    official recipe trains in fp16; ``dtype='bfloat16'`` selects bf16) and
    the fp32 :class:`SelfPatchOptimWrapper` otherwise, so one config serves
    GPU clusters and CPU runs. On the CPU, ``dtype`` and ``loss_scale`` are
    ignored; ``tools/train.py --amp --amp-dtype bf16`` turns CPU autocast
    on explicitly.

    Args:
        bf16_fallback (str, optional): With ``dtype='bfloat16'``, what a
            CUDA device without native bf16 (:func:`cuda_has_bf16`) trains
            in: None (default) keeps bf16 (emulated, slow), ``'fp32'`` trains
            in fp32. The ViT-S/8 config sets ``'fp32'``: bf16 where the GPU
            has it, fp32 otherwise, never fp16 (the official advice against
            mixed precision for smaller patches).
        **kwargs: Arguments of the wrapper built.
    """
    if bf16_fallback not in BF16_FALLBACKS:
        raise ValueError(f'optim_wrapper.bf16_fallback must be one of '
                         f'{BF16_FALLBACKS}, got {bf16_fallback!r}.')
    if _cuda_available():
        name = str(kwargs.get('dtype', 'float16')).replace('torch.', '')
        bf16 = DTYPES.get(name) is torch.bfloat16
        if not (bf16 and bf16_fallback == 'fp32' and not cuda_has_bf16()):
            return SelfPatchAmpOptimWrapper(**kwargs)
        print_log(
            'AutoAmpSelfPatchOptimWrapper: this GPU has no native bf16 '
            '(compute capability < 8.0); training in fp32 '
            "(optim_wrapper.bf16_fallback='fp32').",
            logger='current')
    for key in _AMP_ONLY_KEYS:
        kwargs.pop(key, None)
    return SelfPatchOptimWrapper(**kwargs)
