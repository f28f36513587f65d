# Copyright (c) selfpatch_mm contributors. All rights reserved.
import logging
from typing import List

from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

__all__ = ['StudentOptimWrapperConstructor']


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class StudentOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's constructor that does not walk the EMA teacher.

    The teacher's parameters are frozen (the EMA moves them, not the
    optimizer), so mmengine's ``paramwise_cfg`` walk skips each one with a
    WARNING, ``teacher.<name> is skipped since its requires_grad=False``:
    104 lines on the demo, more on ViT-S, in which a warning a user must act
    on drowns. The groups are the same: those parameters were skipped anyway.
    The student's own frozen parameters (the weight-norm gain of the heads'
    last layers, frozen as officially with ``norm_last_layer=True``) are
    skipped as before, and named in one INFO line instead of a WARNING each.

    Args:
        optim_wrapper_cfg (dict): As ``DefaultOptimWrapperConstructor``.
        paramwise_cfg (dict, optional): As ``DefaultOptimWrapperConstructor``.
        skip (Sequence[str]): Top-level children left out. Defaults to
            ``('teacher', )``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None,
                 skip=('teacher', )) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        self.skip = tuple(skip)

    def __call__(self, model: nn.Module):
        logger = MMLogger.get_current_instance()
        frozen = _SkipNotes()
        logger.addFilter(frozen)
        try:
            wrapper = super().__call__(model)
        finally:
            logger.removeFilter(frozen)
        if frozen.names:
            logger.info(
                f'Not optimised (requires_grad=False): {len(frozen.names)} '
                f'student parameters ({", ".join(frozen.names)}) and the EMA '
                'teacher.')
        return wrapper

    def add_params(self, params: List[dict], module: nn.Module,
                   prefix: str = '', is_dcn_module=None) -> None:
        if prefix in self.skip:
            return
        super().add_params(params, module, prefix=prefix,
                           is_dcn_module=is_dcn_module)


class _SkipNotes(logging.Filter):
    """Keeps mmengine's per-parameter "is skipped since its
    requires_grad=False" warnings out of the log, noting the names."""

    MARK = ' is skipped since its requires_grad=False'

    def __init__(self) -> None:
        super().__init__()
        self.names: List[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.endswith(self.MARK):
            self.names.append(message[:-len(self.MARK)])
            return False
        return True
