# Copyright (c) selfpatch_mm contributors. All rights reserved.
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from .grad_handling import SelfPatchGradMixin

__all__ = ['SelfPatchOptimWrapper']


@OPTIM_WRAPPERS.register_module()
class SelfPatchOptimWrapper(SelfPatchGradMixin, OptimWrapper):
    """:class:`mmengine.optim.OptimWrapper` (fp32) with per-parameter
    clipping and parameter freezing (see :func:`clip_grad_per_param_`)."""
