# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""A frozen SelfPatch ViT for linear probes of its patch features.

A linear probe (as DINOv2's ADE20K ``linear`` protocol) measures the
pretrained features themselves: the backbone must not move at all. A
learning-rate multiplier of 0 is not enough for that (weight decay, BN/drop
path in train mode, and EMA-style hooks would still touch it), so this
backbone switches off every gradient and stays in eval mode whatever
``train()`` is called with.
"""
from typing import Any, Optional, Sequence, Tuple

import torch
from mmpretrain.registry import MODELS
from torch import nn

from ...checkpoint import get_state_dict

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

    ``out_norm=True`` applies the model's final LayerNorm to every probed
    map, as DINOv2's linear segmentation probe does
    (``get_intermediate_layers(..., norm=True)`` in facebookresearch/dinov2
    ``dinov2/models/vision_transformer.py``, commit b8931f7, called by its
    ``create_segmenter``). A SelfPatch ViT has no final norm of its own:
    its only final LayerNorm is the aggregation module's (``neck.norm``,
    applied there to the patch tokens too), which is loaded from the
    checkpoint (``teacher.neck.norm.*``, or ``neck.norm.*`` for the student).
    A ViT with its own final norm (the standard DINO, ``final_norm=True``)
    uses that one.

    Args:
        arch (str | dict): ViT arch; ``'deit-small'`` is ViT-S/16.
        img_size (int): Size the position embedding is stored for.
        patch_size (int): Patch size.
        out_indices (Sequence[int]): Blocks whose tokens are output, any
            number. Defaults to ``(11,)`` (the last ViT-S block).
        out_norm (bool): The final LayerNorm on every output map (DINOv2's
            probe). Defaults to False (the raw block tokens).
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH)``, as for :class:`SelfPatchDenseViT`.
        **kwargs: Other arguments of :class:`SelfPatchViT`.
    """

    def __init__(self,
                 arch: str = 'deit-small',
                 img_size: int = 224,
                 patch_size: int = 16,
                 out_indices: Sequence[int] = (11, ),
                 out_norm: bool = False,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        for key in ('out_type', 'drop_path_rate', 'frozen_stages',
                    'norm_cfg'):
            if key in kwargs:
                raise TypeError(f'FrozenSelfPatchViT: {key} has no meaning '
                                'for a frozen backbone without a pyramid.')
        # The parent builds (and validates) everything its loading and
        # position-embedding code relies on, for 4 placeholder blocks and
        # without a pyramid; out_indices are set below (any number).
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            out_indices=(0, 1, 2, 3),
            out_mode='patch_stride',
            drop_path_rate=0.0,
            init_cfg=init_cfg,
            **kwargs)
        indices = [i + self.num_layers if i < 0 else i for i in out_indices]
        if not indices or any(i < 0 or i >= self.num_layers
                              for i in indices):
            raise ValueError(f'out_indices {tuple(out_indices)} must name '
                             f'blocks of a {self.num_layers}-block ViT.')
        self.out_indices = indices
        # the aggregation module's final norm (a SelfPatch ViT has none)
        self.out_norm = out_norm
        self.neck_norm = nn.LayerNorm(self.embed_dims, eps=1e-6) if (
            out_norm and not self.final_norm) else None
        self.requires_grad_(False)
        super().train(False)

    def init_weights(self) -> None:
        """Load ``init_cfg`` and keep every weight frozen."""
        super().init_weights()
        # mmengine's initialisers may hand back fresh tensors: freeze again.
        self.requires_grad_(False)

    def load_extra_weights(self, ckpt: Any, checkpoint: str,
                           checkpoint_key: str) -> None:
        """``neck.norm`` of the file's teacher (or student) into
        :attr:`neck_norm`, for ``out_norm=True``, from the file the ViT
        weights were read from."""
        if self.neck_norm is None:
            return
        state = get_state_dict(ckpt)
        prefix = 'teacher.neck.norm.' if checkpoint_key == 'teacher' \
            else 'neck.norm.'
        found = {k[len(prefix):]: v for k, v in state.items()
                 if k.startswith(prefix)}
        if set(found) != {'weight', 'bias'}:
            raise ValueError(
                f'out_norm=True needs the final LayerNorm of the aggregation '
                f'module ({prefix}weight/bias) in {checkpoint}, which has '
                'none (a backbone-only or official ViT file). Use a '
                'tools/train.py pretraining checkpoint, or out_norm=False.')
        with torch.no_grad():
            self.neck_norm.weight.copy_(found['weight'])
            self.neck_norm.bias.copy_(found['bias'])

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
            outs = SelfPatchViT.forward(self, x)
            if not self.out_norm:
                return outs
            if self.neck_norm is not None:
                norm, done = self.neck_norm, None
            else:
                # a DINO ViT's forward already normalises its last block
                norm, done = self.ln1, self.num_layers - 1
            return tuple(
                o if i == done else
                norm(o.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
                for i, o in zip(self.out_indices, outs))
