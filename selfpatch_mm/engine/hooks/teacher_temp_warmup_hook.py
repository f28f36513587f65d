# Copyright (c) selfpatch_mm contributors. All rights reserved.
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from .utils import unwrap_model

__all__ = ['TeacherTempWarmupHook']


@HOOKS.register_module()
class TeacherTempWarmupHook(Hook):
    """Linear per-epoch warm-up of the teacher temperature (official
    ``teacher_temp_schedule``: ``linspace(warmup_temp, temp, warmup_epochs)``
    then constant).

    Args:
        warmup_teacher_temp (float): Temperature of epoch 0.
        teacher_temp (float): Temperature after the warm-up.
        warmup_epochs (int): Warm-up length; 0 keeps ``teacher_temp``.

    The temperature is logged as ``train/teacher_temp``. A model without
    ``set_teacher_temp`` (the stand-in of mmpretrain's ``vis_scheduler.py``)
    gets it logged only, with a warning.
    """

    def __init__(self,
                 warmup_teacher_temp: float = 0.04,
                 teacher_temp: float = 0.04,
                 warmup_epochs: int = 0) -> None:
        self.warmup_teacher_temp = warmup_teacher_temp
        self.teacher_temp = teacher_temp
        self.warmup_epochs = warmup_epochs

    def temp_at(self, epoch: int) -> float:
        """Teacher temperature of ``epoch`` (0-based)."""
        if epoch >= self.warmup_epochs:
            return self.teacher_temp
        if self.warmup_epochs == 1:
            return self.warmup_teacher_temp
        step = (self.teacher_temp - self.warmup_teacher_temp) / (
            self.warmup_epochs - 1)
        return self.warmup_teacher_temp + step * epoch

    def before_train(self, runner) -> None:
        if not hasattr(unwrap_model(runner), 'set_teacher_temp'):
            runner.logger.warning(
                'TeacherTempWarmupHook: the model has no set_teacher_temp(); '
                'the temperature is only logged (a schedule simulation).')

    def before_train_epoch(self, runner) -> None:
        model = unwrap_model(runner)
        temp = self.temp_at(runner.epoch)
        if hasattr(model, 'set_teacher_temp'):
            model.set_teacher_temp(temp)
        runner.message_hub.update_scalar('train/teacher_temp', temp)
