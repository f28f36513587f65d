# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The official SelfPatch step's code structure, run with our weights, so
the benchmark can time it against ours in the same process.

Written from alinlab/SelfPatch@81aef14: ``main_selfpatch.py``
(``train_one_epoch``, ``MultiCropWrapper.forward``, ``DINOLoss.forward``,
the per-parameter EMA loop) and ``selfpatch_vision_transformer.py``
(``SelfPatchHead.forward``, ``Class_Attention``). What it keeps of the
official structure, and what ours changed:

* attention in plain ops (timm), not SDPA;
* neighbours gathered as ``(B, N, 8, C)`` copies of the tokens and every
  patch's query pushed through full class-attention blocks, instead of one
  shared key/value projection and a batched matmul;
* each head called once per crop group, so the weight-normalised
  65536 x 256 layer is rebuilt 4 times a step, not 2;
* the loss as a Python double loop over views, and a per-parameter EMA.

The aggregation here is also the reference of the neck's parity test
(``tests/test_models/test_necks/test_selfpatch_neck.py``), so the step
timed as "official" is checked to compute what ours computes.
"""
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from selfpatch_mm.models.utils import neighbour_index

__all__ = ['official_block', 'official_aggregate', 'official_train_step']


def official_block(blk, x: torch.Tensor,
                   x_cls: torch.Tensor) -> torch.Tensor:
    """``LayerScale_Block_CA`` with ``Class_Attention``, as written, on
    the weights of one of our :class:`ClassAttentionBlock` ``blk``."""
    u = blk.norm1(torch.cat((x_cls, x), dim=1))
    B, N, C = u.shape
    h = blk.num_heads
    q = blk.attn.q(u[:, 0]).unsqueeze(1).reshape(B, 1, h, C // h).permute(
        0, 2, 1, 3)
    k = blk.attn.k(u).reshape(B, N, h, C // h).permute(0, 2, 1, 3)
    v = blk.attn.v(u).reshape(B, N, h, C // h).permute(0, 2, 1, 3)
    attn = ((q * (C // h)**-0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
    out = blk.attn.proj((attn @ v).transpose(1, 2).reshape(B, 1, C))
    x_cls = x_cls + out
    return x_cls + blk.mlp(blk.norm2(x_cls))


def official_aggregate(neck, x: torch.Tensor, loc: bool,
                       k: int) -> torch.Tensor:
    """``SelfPatchHead.forward`` on our neck's weights: ``(B, 1 + N, C)``,
    the image token first; ``loc`` replaces each patch by the summary of
    its ``k`` most similar 3x3 neighbours (official 14x14/6x6 tables)."""
    B, N, C = x.shape
    cls = neck.cls_token.expand(B, -1, -1)
    if not loc:
        for blk in neck.blocks:
            cls = official_block(blk, x, cls)
        return neck.norm(torch.cat([cls, x], dim=1))
    side = int(N**0.5)
    local_idx = neighbour_index((side, side), device=x.device)[0]
    x_norm = F.normalize(x, dim=-1)
    sim = x_norm[:, local_idx] @ x_norm.unsqueeze(2).transpose(-2, -1)
    top_idx = sim.squeeze(-1).topk(k=k, dim=-1)[1].view(-1, k, 1)
    x_loc = x[:, local_idx].view(-1, local_idx.shape[1], C)
    x_loc = torch.gather(x_loc, 1, top_idx.expand(-1, -1, C))
    glo, loc_tokens = cls, cls.repeat(N, 1, 1)
    for blk in neck.blocks:
        glo = official_block(blk, x, glo)
        loc_tokens = official_block(blk, x_loc, loc_tokens)
    return neck.norm(torch.cat([glo, loc_tokens.view(x.shape)], dim=1))


def _forward(parts, images: torch.Tensor, loc: bool) -> List[torch.Tensor]:
    """``MultiCropWrapper.forward``: ``[c_head(cls), p_head(patches)]``."""
    backbone, neck, head, patch_head = parts
    tokens = backbone(images)[-1].flatten(2).transpose(1, 2)
    out = official_aggregate(neck, tokens, loc, neck.k)
    return [head(out[:, :1]), patch_head(out[:, 1:])]


def _loss(model, student_out, teacher_out, ncrops: int) -> torch.Tensor:
    """``DINOLoss.forward``: the double loop and both centre updates."""
    cls_loss, patch_loss = model.head.loss_module, model.patch_head.loss_module
    temp, s_temp = cls_loss.teacher_temp, cls_loss.student_temp
    s_cls = student_out[0][0].chunk(2) + student_out[1][0].chunk(ncrops - 2)
    s_loc = student_out[0][1].chunk(2) + student_out[1][1].chunk(ncrops - 2)
    t_cls = teacher_out[0][0].chunk(2) + teacher_out[1][0].chunk(ncrops - 2)
    t_loc = teacher_out[0][1].chunk(2) + teacher_out[1][1].chunk(ncrops - 2)
    c_loss = p_loss = 0
    n_terms = m_terms = 0
    for iq in range(ncrops):
        q_cls = F.softmax((t_cls[iq] - cls_loss.center) / temp, dim=-1)
        for v in range(ncrops):
            if v == iq:
                q_pat = F.softmax((t_loc[iq] - patch_loss.center) / temp, -1)
                p_loss += torch.sum(
                    -q_pat * F.log_softmax(s_loc[v] / s_temp, dim=-1),
                    dim=-1).mean()
                m_terms += 1
            elif iq <= 1:
                c_loss += torch.sum(
                    -q_cls * F.log_softmax(s_cls[v] / s_temp, dim=-1),
                    dim=-1).mean()
                n_terms += 1
    cls_loss.update_center(torch.cat(t_cls))
    patch_loss.update_center(torch.cat([t.flatten(0, 1) for t in t_loc]))
    return c_loss / n_terms + p_loss / m_terms * patch_loss.loss_weight


def official_train_step(model: nn.Module, optim_wrapper,
                        data: dict) -> None:
    """One step of ``train_one_epoch`` on our SelfPatch model's weights.

    Args:
        model (nn.Module): A :class:`SelfPatch` with the patch loss.
        optim_wrapper: Its optimizer wrapper (autocast, scaler, clipping).
        data (dict): A collated multi-view batch, global views first.
    """
    if not getattr(model, 'with_patch_loss', False):  # also DINOSelfSupervisor
        raise ValueError('The official-shaped step is SelfPatch only.')
    inputs = model.data_preprocessor(data, True)['inputs']
    teacher = [model.teacher[p] for p in model._parts]
    student = [model.backbone, model.neck, model.head, model.patch_head]
    ncrops = len(inputs)
    with optim_wrapper.optim_context(model):
        with torch.no_grad():
            t_out = [_forward(teacher, torch.cat(inputs[:2]), True),
                     _forward(teacher, torch.cat(inputs[2:]), True)]
        s_out = [_forward(student, torch.cat(inputs[:2]), False),
                 _forward(student, torch.cat(inputs[2:]), False)]
        loss = _loss(model, s_out, t_out, ncrops)
    optim_wrapper.update_params(loss)
    with torch.no_grad():
        m = 0.996
        for param_q, param_k in zip(model._student_params(),
                                    model.teacher.parameters()):
            param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)
