# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The linear segmentation probe: BatchNorm and one 1x1 convolution."""
from typing import List, Optional, Sequence, Union

import torch
from mmcv.cnn import build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS

__all__ = ['LinearProbeHead']


@MODELS.register_module()
class LinearProbeHead(BaseDecodeHead):
    """DINOv2-style linear head: concatenated maps -> BN -> 1x1 conv.

    The maps of ``in_index`` are resized to the first one and concatenated
    (mmseg's ``resize_concat``), optionally batch-normalised, and classified
    per patch by the single ``conv_seg`` (``Conv2d(sum(in_channels),
    num_classes, 1)``). Nothing else has weights, so with a frozen backbone
    the model is a linear classifier of the patch features (BN is an affine
    map at test time).

    Args:
        in_channels (int | Sequence[int]): Channels of each input map.
        in_index (int | Sequence[int]): Which backbone outputs to use.
            Defaults to -1 (the last).
        with_bn (bool): BatchNorm before the classifier (DINOv2's
            ``BNHead``), which puts features of any scale on one footing.
            Defaults to True.
        norm_cfg (dict, optional): The BN; ``dict(type='SyncBN')`` becomes
            BN in single-process runs (mmengine's Runner). Defaults to
            ``dict(type='BN')``.
        dropout_ratio (float): Dropout before the classifier. Defaults to 0
            (a plain linear probe).
        **kwargs: Other arguments of mmseg's ``BaseDecodeHead``
            (``num_classes``, ``loss_decode``, ``align_corners`` ...).
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 in_index: Union[int, Sequence[int]] = -1,
                 with_bn: bool = True,
                 norm_cfg: Optional[dict] = None,
                 dropout_ratio: float = 0.0,
                 **kwargs) -> None:
        if isinstance(in_channels, (list, tuple)):
            in_channels = list(in_channels)
            in_index = list(in_index) if isinstance(
                in_index, (list, tuple)) else [in_index]
            channels = sum(in_channels)
            kwargs.setdefault('input_transform', 'resize_concat')
        else:
            channels = in_channels
        norm_cfg = norm_cfg or dict(type='BN')
        super().__init__(
            in_channels=in_channels,
            channels=channels,
            in_index=in_index,
            norm_cfg=norm_cfg,
            dropout_ratio=dropout_ratio,
            **kwargs)
        self.bn = build_norm_layer(norm_cfg, channels)[1] if with_bn \
            else None

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        """Per-patch class logits ``(B, num_classes, H, W)``."""
        x = self._transform_inputs(inputs)
        if self.bn is not None:
            x = self.bn(x)
        return self.cls_seg(x)
