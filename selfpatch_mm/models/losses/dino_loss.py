# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Image-level DINO loss (https://arxiv.org/abs/2104.14294, Alg. 1)."""
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ..utils.precision import autocast_off
from .centered_loss import CenteredLoss

__all__ = ['DINOLoss', 'cross_view_cross_entropy']


def cross_view_cross_entropy(student_logits: torch.Tensor,
                             teacher_probs: torch.Tensor,
                             student_temp: float) -> torch.Tensor:
    """Mean cross-entropy between every teacher view and every *other*
    student view.

    Args:
        student_logits (Tensor): ``(S, B, K)`` logits of S views.
        teacher_probs (Tensor): ``(T, B, K)`` target distributions; teacher
            view ``t`` is the same image crop as student view ``t``.
        student_temp (float): Student temperature.

    Returns:
        Tensor: Scalar (fp32, also under autocast), the average over the
        ``T * S - T`` view pairs of the batch-mean cross-entropy.
    """
    T, S = teacher_probs.shape[0], student_logits.shape[0]
    with autocast_off(student_logits):
        log_p = F.log_softmax(student_logits.float() / student_temp, dim=-1)
        # ce[t, s] = -sum_{b,k} q[t,b,k] log p[s,b,k] / B
        ce = -torch.einsum('tbk,sbk->ts', teacher_probs.float(), log_p)
    ce = ce / student_logits.shape[1]
    same_view = torch.eye(T, S, dtype=torch.bool, device=ce.device)
    return ce.masked_fill(same_view, 0).sum() / (T * S - min(T, S))


@MODELS.register_module()
class DINOLoss(CenteredLoss):
    """[CLS] cross-entropy across views with a centred, sharpened teacher.

    As in the official ``DINOLoss.forward`` of SelfPatch, the first
    ``num_global_views`` teacher views are targets for every other student
    view, and the centre is updated with *all* teacher views given (in
    SelfPatch the teacher also sees the local crops).

    Args:
        out_channels (int): Head output width (65536).
        num_global_views (int): Teacher views used as targets (2).
        **kwargs: See :class:`CenteredLoss`.
    """

    def __init__(self,
                 out_channels: int,
                 num_global_views: int = 2,
                 **kwargs) -> None:
        super().__init__(out_channels, **kwargs)
        self.num_global_views = num_global_views

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        """Loss, health figures (:meth:`record_health`), then centre update.

        Args:
            student_logits (Tensor): ``(S, B, K)``.
            teacher_logits (Tensor): ``(T, B, K)``, ``T >= num_global_views``.

        Returns:
            Tensor: Weighted scalar loss, fp32.
        """
        q = self.teacher_probs(teacher_logits[:self.num_global_views])
        loss = cross_view_cross_entropy(student_logits, q, self.student_temp)
        self.record_health([q], loss)
        self.update_center(teacher_logits)
        return loss * self.loss_weight
