"""One SelfPatch training step as the official code writes it, on copies of
our model's modules (the reference of test_full_step_parity.py).

Written from alinlab/SelfPatch@81aef14:

- ``main_selfpatch.py`` ``train_one_epoch`` (lines 317-368): lr and, on
  the first group only, weight decay from the schedules; the teacher on
  ``[globals, locals]`` with ``loc=True``, the student with ``loc=False``;
  ``loss.backward()``, ``utils.clip_gradients``,
  ``utils.cancel_gradients_last_layer``, ``optimizer.step()``; the EMA loop
  ``param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)``;
- ``main_selfpatch.py`` ``DINOLoss.forward``/``update_center``/
  ``update_patch_center`` (lines 400-485, one process: the all-reduce is
  the identity);
- ``utils.py`` ``clip_gradients`` (112), ``cancel_gradients_last_layer``
  (124), ``get_params_groups`` (612); ``torch.optim.AdamW(params_groups)``
  (main_selfpatch.py 243).

The forward of one network is ``MultiCropWrapper.forward`` with
``SelfPatchHead.forward`` as ``tests/reference/official_step.py``
writes them (the neck's parity test checks that aggregation against ours);
the backbone and the two projection heads are our modules' copies, each
with its own parity tests.
"""
import copy
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reference.official_step import official_aggregate

__all__ = ['OfficialSelfPatch']


def get_params_groups(model: nn.Module) -> List[dict]:
    """``utils.get_params_groups``: no decay on biases and 1-D tensors."""
    regularized, not_regularized = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.endswith('.bias') or len(param.shape) == 1:
            not_regularized.append(param)
        else:
            regularized.append(param)
    return [{'params': regularized},
            {'params': not_regularized, 'weight_decay': 0.}]


def clip_gradients(model: nn.Module, clip: float) -> None:
    """``utils.clip_gradients``: each gradient to norm ``clip`` alone."""
    for _, p in model.named_parameters():
        if p.grad is not None:
            param_norm = p.grad.data.norm(2)
            clip_coef = clip / (param_norm + 1e-6)
            if clip_coef < 1:
                p.grad.data.mul_(clip_coef)


def cancel_gradients_last_layer(epoch: int, model: nn.Module,
                                freeze_last_layer: int) -> None:
    """``utils.cancel_gradients_last_layer``."""
    if epoch >= freeze_last_layer:
        return
    for n, p in model.named_parameters():
        if 'last_layer' in n:
            p.grad = None


class Network(nn.Module):
    """``MultiCropWrapper`` of backbone, SelfPatch head and the two
    projection heads (``head_only=True``)."""

    def __init__(self, backbone, neck, head, patch_head) -> None:
        super().__init__()
        self.backbone, self.neck = backbone, neck
        self.head, self.patch_head = head, patch_head

    def forward(self, images: torch.Tensor, loc: bool) -> List[torch.Tensor]:
        tokens = self.backbone(images)[-1].flatten(2).transpose(1, 2)
        out = official_aggregate(self.neck, tokens, loc, self.neck.k)
        return [self.head(out[:, :1]), self.patch_head(out[:, 1:])]


class OfficialSelfPatch:
    """The official step's state: student, teacher, AdamW, both centres.

    Args:
        model: A :class:`SelfPatch` (its modules are copied).
        lr (float): Every group's learning rate at this step.
        weight_decay (float): The first group's weight decay.
        clip_grad (float): ``--clip_grad`` (3.0).
        freeze_last_layer (int): ``--freeze_last_layer`` (1).
        teacher_temp (float): ``teacher_temp_schedule[epoch]``.
        student_temp (float): 0.1. center_momentum (float): 0.9.
    """

    def __init__(self, model, lr: float, weight_decay: float,
                 clip_grad: float = 3.0, freeze_last_layer: int = 1,
                 teacher_temp: float = 0.04, student_temp: float = 0.1,
                 center_momentum: float = 0.9) -> None:
        parts = ('backbone', 'neck', 'head', 'patch_head')
        self.student = Network(
            *[copy.deepcopy(getattr(model, p)) for p in parts]).train()
        self.teacher = Network(
            *[copy.deepcopy(model.teacher[p]) for p in parts]).eval()
        for p in self.teacher.parameters():
            p.requires_grad = False
        self.optimizer = torch.optim.AdamW(get_params_groups(self.student))
        for i, group in enumerate(self.optimizer.param_groups):
            group['lr'] = lr
            if i == 0:
                group['weight_decay'] = weight_decay
        self.clip_grad, self.freeze_last_layer = clip_grad, freeze_last_layer
        self.temp, self.student_temp = teacher_temp, student_temp
        self.center_momentum = center_momentum
        self.center = model.head.loss_module.center.detach().clone().view(
            1, 1, -1)
        self.patch_center = model.patch_head.loss_module.center.detach(
        ).clone().view(1, -1)

    def _cross_entropy(self, q: torch.Tensor,
                       student: torch.Tensor) -> torch.Tensor:
        """``torch.sum(-q * F.log_softmax(p / student_temp, dim=-1),
        dim=-1).mean()``, as both terms of ``DINOLoss.forward`` write it."""
        return torch.sum(
            -q * F.log_softmax(student / self.student_temp, dim=-1),
            dim=-1).mean()

    def loss(self, student_output, teacher_output, ncrops: int):
        """``DINOLoss.forward``: total, cls and patch losses."""
        student_cls = student_output[0][0].chunk(2) + \
            student_output[1][0].chunk(ncrops - 2)
        student_loc = student_output[0][1].chunk(2) + \
            student_output[1][1].chunk(ncrops - 2)
        teacher_cls = teacher_output[0][0].chunk(2) + \
            teacher_output[1][0].chunk(ncrops - 2)
        teacher_loc = teacher_output[0][1].chunk(2) + \
            teacher_output[1][1].chunk(ncrops - 2)
        c_loss = p_loss = 0
        n_loss_terms = m_loss_terms = 0
        for iq in range(len(teacher_cls)):
            q_cls = F.softmax(
                (teacher_cls[iq] - self.center) / self.temp, dim=-1).detach()
            for v in range(ncrops):
                if v == iq:
                    q_pat = F.softmax(
                        (teacher_loc[iq] - self.patch_center) / self.temp,
                        dim=-1).detach()
                    p_loss += self._cross_entropy(q_pat, student_loc[v])
                    m_loss_terms += 1
                else:
                    if iq > 1:
                        continue
                    c_loss += self._cross_entropy(q_cls, student_cls[v])
                    n_loss_terms += 1
        c_loss /= n_loss_terms
        p_loss /= m_loss_terms
        self.update_centers(torch.cat(teacher_cls), teacher_loc)
        return c_loss + p_loss * 0.1, c_loss, p_loss

    @torch.no_grad()
    def update_centers(self, teacher_cls: torch.Tensor,
                       teacher_loc: Sequence[torch.Tensor]) -> None:
        """``update_center`` and ``update_patch_center``."""
        m = self.center_momentum
        batch_center = torch.sum(teacher_cls, dim=0, keepdim=True)
        batch_center = batch_center / len(teacher_cls)
        self.center = self.center * m + batch_center * (1 - m)
        patch_num, batch_center = 0, 0
        for t_out in teacher_loc:
            patch_num += t_out.shape[1] * t_out.shape[0]
            batch_center += t_out.sum(1).sum(0, keepdim=True)
        batch_center = batch_center / patch_num
        self.patch_center = self.patch_center * m + batch_center * (1 - m)

    def train_step(self, images: List[torch.Tensor], epoch: int,
                   momentum: float) -> Dict[str, torch.Tensor]:
        """One iteration of ``train_one_epoch`` (fp32)."""
        with torch.no_grad():
            teacher_output = [self.teacher(torch.cat(images[:2]), loc=True),
                              self.teacher(torch.cat(images[2:]), loc=True)]
        student_output = [self.student(torch.cat(images[:2]), loc=False),
                          self.student(torch.cat(images[2:]), loc=False)]
        loss, c_loss, p_loss = self.loss(student_output, teacher_output,
                                         len(images))
        self.optimizer.zero_grad()
        loss.backward()
        clip_gradients(self.student, self.clip_grad)
        cancel_gradients_last_layer(epoch, self.student,
                                    self.freeze_last_layer)
        self.optimizer.step()
        with torch.no_grad():
            for param_q, param_k in zip(self.student.parameters(),
                                        self.teacher.parameters()):
                param_k.data.mul_(momentum).add_(
                    (1 - momentum) * param_q.detach().data)
        return dict(loss=loss.detach(), c_loss=c_loss.detach(),
                    p_loss=p_loss.detach())
