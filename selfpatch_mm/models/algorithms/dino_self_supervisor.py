# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Standard DINO (Caron et al., ICCV 2021, https://arxiv.org/abs/2104.14294;
official code facebookresearch/dino ``main_dino.py``), the baseline that
SelfPatch (https://arxiv.org/abs/2206.07990) extends.

Registered as ``DINOSelfSupervisor``: mmpretrain's repository registers
``DINO`` in the same registry from its ``projects/dino`` (and mmdet has a
``DINO`` detector), so the plain name would clash where those are imported.
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils import group_views
from .ema_teacher_self_supervisor import EMATeacherSelfSupervisor

__all__ = ['DINOSelfSupervisor']


@MODELS.register_module()
class DINOSelfSupervisor(EMATeacherSelfSupervisor):
    """DINO: a ViT's [CLS] token, one head, one loss, an EMA teacher.

    No aggregation module and no patch loss: the backbone's own [CLS] token
    (after its final norm) goes to the :class:`DINOHead`; the teacher sees
    the global views only.

    Args:
        backbone (dict): A ViT with a [CLS] token returning it
            (:class:`SelfPatchViT` with ``with_cls_token=True``,
            ``final_norm=True``, ``out_type='cls_token'``).
        head (dict): :class:`DINOHead` with a :class:`DINOLoss`.
        neck (dict, optional): Must be None (kept for mmpretrain's
            signature).
        num_global_views (int): Leading views that are global crops.
        log_health (bool): Log the head's health figures with the loss
            (:meth:`health_figures`).
        **kwargs: ``data_preprocessor``, ``init_cfg``, ``pretrained``.
    """

    _parts = ('backbone', 'head')

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 neck: Optional[dict] = None,
                 num_global_views: int = 2,
                 log_health: bool = True,
                 **kwargs) -> None:
        if neck is not None:
            raise ValueError('DINOSelfSupervisor has no neck; use SelfPatch '
                             'for the aggregation module.')
        super().__init__(backbone=backbone, head=head, **kwargs)
        self.num_global_views = num_global_views
        self.build_teacher(backbone=backbone, head=head)
        self.set_log_health(log_health)

    def image_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """The teacher's [CLS] token ``(B, C)``."""
        return self.teacher.backbone(inputs)[-1]

    def _logits(self, net,
                views: List[torch.Tensor]) -> Tuple[torch.Tensor,
                                                    torch.Tensor]:
        """``(V, B, K)`` head logits of ``views`` and the ``(V * B, C)``
        [CLS] tokens they come from; one backbone pass per resolution
        (official ``MultiCropWrapper``), one head pass."""
        groups = group_views(views)
        cls = torch.cat([net.backbone(crops)[-1] for crops, _ in groups])
        return net.head(cls).unflatten(0, (len(views), -1)), cls

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """DINO's loss of one batch.

        Args:
            inputs (list[Tensor]): Views ``(B, 3, H_v, W_v)``, global first.
            data_samples (list[DataSample]): Unused.

        Returns:
            dict[str, Tensor]: ``loss_cls`` and the logged-only
            ``health/*`` figures.
        """
        with torch.no_grad():
            teacher, feats = self._logits(self.teacher,
                                          inputs[:self.num_global_views])
        student, _ = self._logits(self, inputs)
        return dict(loss_cls=self.head.loss(student, teacher),
                    **self.health_figures(cls=feats))
