# Copyright (c) selfpatch_mm contributors. All rights reserved.
import math
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from .utils import unwrap_model

__all__ = ['TeacherEMAHook']

DATA_BATCH = Optional[Sequence[dict]]


@HOOKS.register_module()
class TeacherEMAHook(Hook):
    """Updates the teacher after every optimizer step with a momentum that
    rises from ``momentum`` to ``end_momentum`` on a cosine over the whole
    run (official ``momentum_schedule``, indexed by the 0-based iteration).

    Args:
        momentum (float): Initial momentum (0.996).
        end_momentum (float): Final momentum (1.0).
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, momentum: float = 0.996, end_momentum: float = 1.0):
        self.momentum = momentum
        self.end_momentum = end_momentum

    def momentum_at(self, it: int, max_iters: int) -> float:
        """Momentum used after the optimizer step of iteration ``it``."""
        cos = math.cos(math.pi * it / max_iters)
        return self.end_momentum + 0.5 * (self.momentum -
                                          self.end_momentum) * (1 + cos)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        model = unwrap_model(runner)
        m = self.momentum_at(runner.iter, runner.max_iters)
        model.update_teacher(m)
        runner.message_hub.update_scalar('train/teacher_momentum', m)
