# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""SelfPatch: DINO plus a patch-level pretext task.

Yun et al., "Patch-level Representation Learning for Self-supervised Vision
Transformers", CVPR 2022, https://arxiv.org/abs/2206.07990. Official code:
alinlab/SelfPatch (``main_selfpatch.py``).
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from ..utils import group_views
from .ema_teacher_self_supervisor import EMATeacherSelfSupervisor

__all__ = ['SelfPatch']


@MODELS.register_module()
class SelfPatch(EMATeacherSelfSupervisor):
    """Student (backbone, neck, heads) and an EMA teacher.

    The teacher's parts are built from the same configs, its heads without
    losses (see :class:`EMATeacherSelfSupervisor`). It is updated by
    :meth:`update_teacher`, which :class:`TeacherEMAHook` calls after every
    optimizer step.

    Args:
        backbone (dict): ViT config (:class:`SelfPatchViT`).
        neck (dict): :class:`SelfPatchNeck` config.
        head (dict): Image-level :class:`DINOHead` with a :class:`DINOLoss`.
        patch_head (dict, optional): Patch-level :class:`DINOHead` with a
            :class:`PatchLoss`. Required when ``with_patch_loss``.
        with_patch_loss (bool): False gives the no-patch-loss ablation: no
            patch head, and the teacher sees only the global views (the
            aggregation module stays; the standard DINO is
            :class:`DINOSelfSupervisor`).
        num_global_views (int): Leading views that are global crops.
        log_health (bool): Log the health figures of both heads with the
            losses (:meth:`health_figures`).
        **kwargs: ``data_preprocessor``, ``init_cfg``, ``pretrained``.
    """

    _parts = ('backbone', 'neck', 'head', 'patch_head')

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 patch_head: Optional[dict] = None,
                 with_patch_loss: bool = True,
                 num_global_views: int = 2,
                 log_health: bool = True,
                 **kwargs) -> None:
        super().__init__(backbone=backbone, neck=neck, head=head, **kwargs)
        self.with_patch_loss = with_patch_loss
        self.num_global_views = num_global_views
        if with_patch_loss and patch_head is None:
            raise ValueError('with_patch_loss=True needs a `patch_head`.')
        patch_head = patch_head if with_patch_loss else None
        self.patch_head = MODELS.build(patch_head) if patch_head else None
        self.build_teacher(
            backbone=backbone, neck=neck, head=head, patch_head=patch_head)
        self.set_log_health(log_health)

    def image_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """The teacher's [CLS] token ``(B, C)`` (aggregation module, after
        its final norm), the image feature of the official k-NN."""
        return self.teacher.neck(self.teacher.backbone(inputs))[0]

    def _encode(self, net: nn.Module, views: List[Tuple[torch.Tensor, int]],
                neighbours: bool) -> Tuple[torch.Tensor, Optional[list],
                                           dict]:
        """Logits of grouped views (see :func:`group_views`): ``cls``
        ``(V, B, K)``, with the patch loss one ``(n, B, N, K')`` per group,
        and the features the heads read (``cls`` ``(V * B, C)``, ``patch``
        ``(M, C)`` or None)."""
        cls, tokens = zip(*[
            net.neck(net.backbone(crops), with_neighbours=neighbours)
            for crops, _ in views
        ])
        feats = dict(cls=torch.cat(cls), patch=None)
        # One head call for all resolutions: the weight-normalised last
        # layer (65536 x 256) is then computed once per step, not per group.
        cls = net.head(feats['cls']).unflatten(0, (sum(n for _, n in views),
                                                   -1))
        if not self.with_patch_loss:
            return cls, None, feats
        feats['patch'] = torch.cat([t.flatten(0, 1) for t in tokens])
        logits = net.patch_head(feats['patch'])
        patch = logits.split([t.shape[0] * t.shape[1] for t in tokens])
        return cls, [
            p.view(n, -1, t.shape[1], p.shape[-1])
            for p, t, (_, n) in zip(patch, tokens, views)
        ], feats

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Losses of one batch.

        Args:
            inputs (list[Tensor]): Views ``(B, 3, H_v, W_v)``, global first.
            data_samples (list[DataSample]): Unused.

        Returns:
            dict[str, Tensor]: ``loss_cls``, (SelfPatch) ``loss_patch``, and
            the logged-only ``health/*`` figures of both heads.
        """
        views = group_views(inputs)
        # SelfPatch's teacher sees every crop (the patch loss pairs each view
        # with itself) and summarises neighbours; DINO's sees the globals.
        teacher_views = views if self.with_patch_loss else group_views(
            inputs[:self.num_global_views])
        with torch.no_grad():
            t_cls, t_patch, t_feats = self._encode(
                self.teacher, teacher_views, neighbours=self.with_patch_loss)
        s_cls, s_patch, _ = self._encode(self, views, neighbours=False)
        losses = dict(loss_cls=self.head.loss(s_cls, t_cls))
        if self.with_patch_loss:
            losses['loss_patch'] = self.patch_head.loss(s_patch, t_patch)
        return dict(losses, **self.health_figures(**t_feats))
