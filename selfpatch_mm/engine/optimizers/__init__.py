# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .auto_amp_selfpatch_optim_wrapper import AutoAmpSelfPatchOptimWrapper
from .grad_handling import SelfPatchGradMixin, clip_grad_per_param_
from .selfpatch_amp_optim_wrapper import SelfPatchAmpOptimWrapper
from .selfpatch_optim_wrapper import SelfPatchOptimWrapper
from .student_optim_wrapper_constructor import \
    StudentOptimWrapperConstructor

__all__ = [
    'SelfPatchOptimWrapper', 'SelfPatchAmpOptimWrapper',
    'AutoAmpSelfPatchOptimWrapper', 'SelfPatchGradMixin',
    'clip_grad_per_param_', 'StudentOptimWrapperConstructor'
]
