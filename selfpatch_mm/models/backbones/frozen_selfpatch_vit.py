# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""A frozen SelfPatch ViT for linear probes of its patch features.

A linear probe (as DINOv2's ADE20K ``linear`` protocol) measures the
pretrained features themselves: the backbone must not move at all. A
learning-rate multiplier of 0 is not enough for that (weight decay, BN/drop
path in train mode, and EMA-style hooks would still touch it), so this
backbone switches off every gradient and stays in eval mode whatever
``train()`` is called with.
"""
from typing import Optional, Sequence, Tuple

import torch
from mmpretrain.registry import MODELS

from .selfpatch_dense_vit import SelfPatchDenseViT
from .selfpatch_vit import SelfPatchViT

__all__ = ['FrozenSelfPatchViT']


@MODELS.register_module()
class FrozenSelfPatchViT(SelfPatchDenseViT):
    """SelfPatch ViT, frozen, giving stride-``patch_size`` patch maps.

    It loads checkpoints exactly as :class:`SelfPatchDenseViT` (the EMA
    teacher of a ``tools/train.py`` checkpoint by default, backbone-only and
    official files too), but has no resampling pyramid: the tokens after
    each block of ``out_indices`` come out as ``(B, C, H/p, W/p)`` maps, so a
    decode head can concatenate any number of layers. The ViT needs at
    least 4 blocks (the parent's pyramid is built, then dropped).

    Every parameter has ``requires_grad=False`` and the module is always in
    eval mode (no drop path, no dropout), so training a head on top leaves
    the backbone bit-identical to the loaded checkpoint.

    Args:
        arch (str | dict): ViT arch; ``'deit-small'`` is ViT-S/16.
        img_size (int): Size the position embedding is stored for.
        patch_size (int): Patch size.
        out_indices (Sequence[int]): Blocks whose tokens are output, any
            number. Defaults to ``(11,)`` (the last ViT-S block).
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH)``, as for :class:`SelfPatchDenseViT`.
        **kwargs: Other arguments of :class:`SelfPatchViT`.
    """

    def __init__(self,
                 arch: str = 'deit-small',
                 img_size: int = 224,
                 patch_size: int = 16,
                 out_indices: Sequence[int] = (11, ),
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        for key in ('out_type', 'drop_path_rate', 'frozen_stages',
                    'norm_cfg'):
            if key in kwargs:
                raise TypeError(f'FrozenSelfPatchViT: {key} has no meaning '
                                'for a frozen backbone without a pyramid.')
        # The parent builds (and validates) everything its loading and
        # position-embedding code relies on; its 4-map pyramid, built here
        # for 4 placeholder blocks, is then removed: the probe reads the
        # plain token maps of ``out_indices``.
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            out_indices=(0, 1, 2, 3),
            drop_path_rate=0.0,
            norm_cfg=dict(type='BN'),
            init_cfg=init_cfg,
            **kwargs)
        for i in range(1, 5):
            delattr(self, f'fpn{i}')
        indices = [i + self.num_layers if i < 0 else i for i in out_indices]
        if not indices or any(i < 0 or i >= self.num_layers
                              for i in indices):
            raise ValueError(f'out_indices {tuple(out_indices)} must name '
                             f'blocks of a {self.num_layers}-block ViT.')
        self.out_indices = indices
        self.requires_grad_(False)
        super().train(False)

    def init_weights(self) -> None:
        """Load ``init_cfg`` and keep every weight frozen."""
        super().init_weights()
        # mmengine's initialisers may hand back fresh tensors: freeze again.
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> 'FrozenSelfPatchViT':
        """Stay in eval mode: a frozen probe backbone never trains."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward without autograd.

        Args:
            x (Tensor): ``(B, 3, H, W)``, H and W multiples of the patch
                size.

        Returns:
            tuple[Tensor]: One ``(B, C, H/p, W/p)`` map per ``out_indices``.
        """
        with torch.no_grad():
            # the plain ViT forward: the parent's would run its pyramid
            return SelfPatchViT.forward(self, x)
