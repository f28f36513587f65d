# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""DINO projection head (https://arxiv.org/abs/2104.14294), used by SelfPatch
for both the image-level and the patch-level outputs."""
from typing import Any, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.registry import MODELS
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..utils.init_cfg import is_pretrained_init
from ..utils.precision import autocast_off


@MODELS.register_module()
class DINOHead(BaseModule):
    """MLP -> L2 normalisation -> weight-normalised linear layer, plus the
    loss it is trained with.

    The last layer uses ``torch.nn.utils.parametrizations.weight_norm``; its
    state-dict keys are ``last_layer.parametrizations.weight.original0``
    (the official ``weight_g``) and ``...original1`` (``weight_v``).

    Args:
        in_channels (int): Input width (384 for ViT-S).
        out_channels (int): Output width (65536 for [CLS], 4096 for patches).
        hidden_channels (int): MLP width. Defaults to 2048.
        bottleneck_channels (int): Width before the last layer (256).
        num_layers (int): MLP layers. Defaults to 3.
        norm_last_layer (bool): Freeze the weight-norm magnitude at 1.
        fp32_last_layer (bool): Run the weight-normalised prototype layer in
            fp32 under autocast. The official head (and the default) runs
            it in the autocast dtype, which rounds the logits (bf16: 8
            mantissa bits) before the 0.04 teacher temperature divides
            them; docs/training_on_gpus.md has the measured effect.
        loss (dict, optional): Loss config; the teacher's copy has none.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 hidden_channels: int = 2048,
                 bottleneck_channels: int = 256,
                 num_layers: int = 3,
                 norm_last_layer: bool = True,
                 fp32_last_layer: bool = False,
                 loss: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        dims = [in_channels] + [hidden_channels] * (num_layers - 1)
        layers = []
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(d_in, d_out), nn.GELU()]
        layers.append(nn.Linear(dims[-1], bottleneck_channels))
        self.mlp = nn.Sequential(*layers)
        self.last_layer = weight_norm(
            nn.Linear(bottleneck_channels, out_channels, bias=False))
        # Magnitude set to 1 (and frozen with norm_last_layer), as the
        # official head does right after attaching weight norm.
        g = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            g.fill_(1)
        g.requires_grad_(not norm_last_layer)
        self.fp32_last_layer = fp32_last_layer
        self.loss_module = MODELS.build(loss) if loss is not None else None

    def init_weights(self) -> None:
        super().init_weights()
        if is_pretrained_init(self.init_cfg):
            return
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``(..., C)`` tokens to ``(..., out_channels)`` logits."""
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        if self.fp32_last_layer:
            with autocast_off(x):
                return self.last_layer(x.float())
        return self.last_layer(x)

    def loss(self, student_logits: Any, teacher_logits: Any) -> torch.Tensor:
        """Loss of the student's logits against the teacher's."""
        return self.loss_module(student_logits, teacher_logits)
