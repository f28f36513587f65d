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
    run (official ``momentum_schedule``, indexed by the 0-based step).

    With gradient accumulation (``optim_wrapper.accumulative_counts=N``)
    the teacher moves only on iterations where the optimizer stepped, and
    the cosine runs over the run's ``ceil(max_iters / N)`` optimizer steps,
    so the teacher never runs ahead of the student. Without accumulation
    steps and iterations coincide, as officially.

    It needs a wrapper with ``accumulative_counts`` (``SelfPatchOptimWrapper``
    or ``SelfPatchAmpOptimWrapper``). The momentum is logged as
    ``train/teacher_momentum``. A model without ``update_teacher`` (the
    stand-in of mmpretrain's ``vis_scheduler.py``, which only simulates the
    schedules) gets the schedule logged and no update, with a warning.

    Args:
        momentum (float): Initial momentum (0.996).
        end_momentum (float): Final momentum (1.0).
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, momentum: float = 0.996, end_momentum: float = 1.0):
        self.momentum = momentum
        self.end_momentum = end_momentum

    def momentum_at(self, step: int, max_steps: int) -> float:
        """Momentum used after the optimizer step ``step`` (0-based) of a run
        of ``max_steps`` steps."""
        cos = math.cos(math.pi * step / max_steps)
        return self.end_momentum + 0.5 * (self.momentum -
                                          self.end_momentum) * (1 + cos)

    def before_train(self, runner) -> None:
        if not hasattr(runner.optim_wrapper, 'accumulative_counts'):
            raise TypeError(
                'TeacherEMAHook needs optim_wrapper.type='
                "'SelfPatchOptimWrapper' (or 'SelfPatchAmpOptimWrapper', "
                "'AutoAmpSelfPatchOptimWrapper'), got "
                f'{type(runner.optim_wrapper).__name__}.')
        if not hasattr(unwrap_model(runner), 'update_teacher'):
            runner.logger.warning(
                'TeacherEMAHook: the model has no update_teacher(); the '
                'teacher momentum is only logged (a schedule simulation).')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        wrapper = runner.optim_wrapper
        # should_update() still answers for the iteration that just ran:
        # its counter moves at the next backward.
        if not wrapper.should_update():
            return
        n = wrapper.accumulative_counts
        step = math.ceil((runner.iter + 1) / n) - 1
        m = self.momentum_at(step, math.ceil(runner.max_iters / n))
        model = unwrap_model(runner)
        if hasattr(model, 'update_teacher'):
            model.update_teacher(m)
        runner.message_hub.update_scalar('train/teacher_momentum', m)
