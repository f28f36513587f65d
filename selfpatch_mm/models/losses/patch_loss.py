# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Patch-level loss of SelfPatch (https://arxiv.org/abs/2206.07990, Eq. 3)."""
from typing import Sequence

import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ..utils.precision import autocast_off
from .centered_loss import CenteredLoss

__all__ = ['PatchLoss', 'per_view_patch_cross_entropy']


def per_view_patch_cross_entropy(student_logits: torch.Tensor,
                                 teacher_probs: torch.Tensor,
                                 student_temp: float) -> torch.Tensor:
    """Cross-entropy between teacher and student tokens of the same patch of
    the same view, averaged over batch and patches.

    Args:
        student_logits (Tensor): ``(V, B, N, K)``.
        teacher_probs (Tensor): ``(V, B, N, K)``.
        student_temp (float): Student temperature.

    Returns:
        Tensor: ``(V,)`` one loss per view, fp32 (also under autocast: the
        sum over ``B * N * K`` terms overflows fp16).
    """
    with autocast_off(student_logits):
        log_p = F.log_softmax(student_logits.float() / student_temp, dim=-1)
        ce = -torch.einsum('vbnk,vbnk->v', teacher_probs.float(), log_p)
    return ce / (student_logits.shape[1] * student_logits.shape[2])


@MODELS.register_module()
class PatchLoss(CenteredLoss):
    """Student patch ``i`` against the teacher's summary of patch ``i``'s
    positives, in the same view.

    Views may have different grids (224 and 96 crops), so inputs are given
    per resolution group. As in the official code every view counts once,
    whatever its number of patches, and the centre is the mean over all
    teacher patch tokens.

    Args:
        out_channels (int): Patch head output width (4096).
        loss_weight (float): lambda of the paper (0.1).
        **kwargs: See :class:`CenteredLoss`.
    """

    def __init__(self,
                 out_channels: int,
                 loss_weight: float = 0.1,
                 **kwargs) -> None:
        super().__init__(out_channels, loss_weight=loss_weight, **kwargs)

    def forward(self, student_logits: Sequence[torch.Tensor],
                teacher_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        """Loss, health figures (:meth:`record_health`), then centre update.

        Args:
            student_logits (Sequence[Tensor]): One ``(V_g, B, N_g, K)`` per
                resolution group.
            teacher_logits (Sequence[Tensor]): Same shapes.

        Returns:
            Tensor: Weighted scalar loss, fp32.
        """
        probs = [self.teacher_probs(t) for t in teacher_logits]
        loss = torch.cat([
            per_view_patch_cross_entropy(s, q, self.student_temp)
            for s, q in zip(student_logits, probs)
        ]).mean()
        self.record_health(probs, loss)
        self.update_center(
            torch.cat([t.reshape(-1, t.shape[-1]) for t in teacher_logits]))
        return loss * self.loss_weight
