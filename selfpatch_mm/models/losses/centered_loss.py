# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Shared state of the DINO-style losses: a teacher centre and temperatures."""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from mmengine import dist
from torch import nn

from ..utils.health import head_figures
from ..utils.precision import autocast_off

__all__ = ['CenteredLoss']


class CenteredLoss(nn.Module):
    """Base class holding a centre that is an EMA of teacher outputs.

    Args:
        out_channels (int): Width of the logits.
        teacher_temp (float): Teacher temperature (0.04); a hook may change
            it during training through :meth:`set_teacher_temp`.
        student_temp (float): Student temperature (0.1).
        center_momentum (float): EMA momentum of the centre (0.9).
        loss_weight (float): Multiplier of the returned loss.
        log_health (bool): Keep the health figures of every call in
            :attr:`health` (see :func:`head_figures`); the algorithm's
            ``set_log_health`` switches it.
    """

    def __init__(self,
                 out_channels: int,
                 teacher_temp: float = 0.04,
                 student_temp: float = 0.1,
                 center_momentum: float = 0.9,
                 loss_weight: float = 1.0,
                 log_health: bool = True) -> None:
        super().__init__()
        self.teacher_temp = teacher_temp
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.loss_weight = loss_weight
        self.log_health = log_health
        self.health: Dict[str, torch.Tensor] = {}
        self.register_buffer('center', torch.zeros(1, out_channels))

    def set_teacher_temp(self, temp: float) -> None:
        """Set the teacher temperature (used by the warm-up hook)."""
        self.teacher_temp = float(temp)

    def teacher_probs(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        """Centred, sharpened teacher distribution, fp32.

        Args:
            teacher_logits (Tensor): ``(..., K)`` logits, any float dtype.

        Returns:
            Tensor: ``softmax((logits - center) / teacher_temp)``, fp32 (the
            temperature of 0.04 turns fp16 rounding of the logits into
            percent-level errors of the targets).
        """
        with autocast_off(teacher_logits):
            return F.softmax(
                (teacher_logits.float() - self.center) / self.teacher_temp,
                dim=-1)

    def record_health(self, teacher_probs: Sequence[torch.Tensor],
                      cross_entropy: torch.Tensor) -> None:
        """Keep :func:`head_figures` of this call in :attr:`health`.

        Called by ``forward`` before :meth:`update_center`, so the figures
        describe the targets and the centre the loss used.

        Args:
            teacher_probs (Sequence[Tensor]): The targets, ``(V, ..., K)``
                per group of views.
            cross_entropy (Tensor): The unweighted scalar loss.
        """
        self.health = head_figures(teacher_probs, cross_entropy,
                                   self.center) if self.log_health else {}

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        """EMA update with the mean of ``teacher_logits`` ``(..., K)`` over
        every leading position on every process (official
        ``update_center``/``update_patch_center``). The centre stays fp32
        whatever the logits' dtype."""
        flat = teacher_logits.detach().reshape(-1, teacher_logits.shape[-1])
        with autocast_off(flat):
            batch_sum = flat.float().sum(0, keepdim=True)
        # all_reduce is a no-op when not distributed.
        dist.all_reduce(batch_sum, op='sum')
        batch_center = batch_sum / (flat.shape[0] * dist.get_world_size())
        self.center.mul_(self.center_momentum).add_(
            batch_center * (1 - self.center_momentum))
