# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .selfpatch_optim_wrapper import (AutoAmpSelfPatchOptimWrapper,
                                      SelfPatchAmpOptimWrapper,
                                      SelfPatchOptimWrapper,
                                      clip_grad_per_param_)

__all__ = [
    'SelfPatchOptimWrapper', 'SelfPatchAmpOptimWrapper',
    'AutoAmpSelfPatchOptimWrapper', 'clip_grad_per_param_'
]
