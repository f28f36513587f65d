# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The ViT used by SelfPatch pretraining.

SelfPatch (https://arxiv.org/abs/2206.07990) trains a ViT whose backbone has
no [CLS] token and no final norm: the image-level token comes from the
aggregation module (:class:`SelfPatchNeck`), which also owns the final
LayerNorm.
"""
from typing import Sequence, Tuple

import numpy as np
import torch
import torch.utils.checkpoint as cp
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS
from torch import nn

# Owned by the loading layer (checkpoints adapt on load); the forward pass
# uses the same official resize for inputs of other sizes.
from ...checkpoint.pos_embed import interpolate_pos_embed
from .pretrained_vit_mixin import PretrainedViTMixin


@MODELS.register_module()
class SelfPatchViT(PretrainedViTMixin, VisionTransformer):
    """mmpretrain's ViT configured as the official SelfPatch backbone.

    Differences from :class:`mmpretrain.models.VisionTransformer` defaults:

    - no [CLS] token and no final norm (``with_cls_token=False``,
      ``final_norm=False``);
    - ``out_type='featmap'``: outputs are ``(B, C, H, W)`` so the grid shape
      travels with the tokens and any crop size or aspect ratio works;
    - position embeddings are resized with the official formula
      (:func:`interpolate_pos_embed`);
    - weights are initialised as in the official code (truncated normal
      std 0.02 for linear layers and the position embedding).

    ``with_cls_token=True, final_norm=True, out_type='cls_token'`` gives the
    standard DINO ViT (:class:`DINOSelfSupervisor`): a [CLS] token with its
    own position, resized the same official way for the patches.

    Args:
        arch (str | dict): ViT arch; ``'deit-small'`` is ViT-S (384-d, 12
            layers, 6 heads). Note ``'small'`` in mmpretrain is a different,
            768-d model.
        img_size (int): Size the position embedding is stored for.
        patch_size (int): Patch size.
        out_indices (Sequence[int] | int): Layers to output.
        drop_path_rate (float): Stochastic depth; the official student uses
            0.1 and the teacher 0 (our teacher runs in eval mode).
        with_cp (bool): Activation checkpointing (mmpretrain's spelling):
            each block's activations are recomputed in the backward pass
            instead of being kept, trading compute for memory. Gradients are
            those without it (the recomputation replays the drop-path RNG).
            Forwards without autograd (the EMA teacher, evaluation) are not
            affected. The official code has none; defaults to False.
        **kwargs: Other arguments of mmpretrain's ``VisionTransformer``.
    """

    def __init__(self,
                 arch: str = 'deit-small',
                 img_size: int = 224,
                 patch_size: int = 16,
                 out_indices: Sequence[int] = -1,
                 drop_path_rate: float = 0.0,
                 with_cp: bool = False,
                 **kwargs) -> None:
        kwargs.setdefault('with_cls_token', False)
        kwargs.setdefault('final_norm', False)
        kwargs.setdefault('out_type', 'featmap')
        kwargs.setdefault('interpolate_mode', 'bicubic')
        super().__init__(arch, img_size, patch_size, out_indices=out_indices,
                         drop_path_rate=drop_path_rate, **kwargs)
        self.patch_size = patch_size
        self.with_cp = with_cp
        # mmpretrain spaces the per-block rates with np.linspace, so each
        # DropPath holds a numpy float: torch.compile cannot trace
        # `drop_prob == 0.` on one and breaks the graph in every block.
        for m in self.modules():
            if isinstance(getattr(m, 'drop_prob', None), np.floating):
                m.drop_prob = float(m.drop_prob)

    def official_init(self) -> None:
        """The official random init, after mmengine's (see
        :class:`PretrainedViTMixin`, which loads a ``Pretrained``
        ``init_cfg`` over it)."""
        # Official init (timm): trunc_normal(0.02) on Linear weights, zero
        # biases, unit LayerNorms; it overrides mmpretrain's xavier FFN init.
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def check_input_size(self, hw: Tuple[int, int]) -> None:
        """Raise a clear error for inputs the patch grid would truncate."""
        if hw[0] % self.patch_size or hw[1] % self.patch_size:
            raise ValueError(
                f'SelfPatchViT got an input of {hw[0]}x{hw[1]} pixels, which '
                f'is not divisible by patch_size={self.patch_size}: the last '
                f'{hw[0] % self.patch_size} rows / {hw[1] % self.patch_size} '
                'columns would be silently dropped. Set the crop sizes in '
                'the pipeline (RandomResizedCrop `scale`) to multiples of '
                f'{self.patch_size}.')

    @staticmethod
    def _resize_pos_embed(pos_embed: torch.Tensor, src_hw: Tuple[int, int],
                          dst_hw: Tuple[int, int]) -> torch.Tensor:
        """The official pretraining resize (a subclass may choose
        another)."""
        return interpolate_pos_embed(pos_embed, src_hw, dst_hw)

    def _add_pos_embed(self, x: torch.Tensor,
                       patch_hw: Tuple[int, int]) -> torch.Tensor:
        """Prepend the [CLS] token (if any), add the position embedding
        resized to ``patch_hw`` (official formula; the [CLS] position as
        is)."""
        n_cls = self.num_extra_tokens
        pos = self._resize_pos_embed(self.pos_embed[:, n_cls:],
                                     self.patch_resolution, patch_hw)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
            pos = torch.cat([self.pos_embed[:, :n_cls], pos], 1)
        return x + pos

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward.

        Args:
            x (Tensor): Images ``(B, 3, H, W)``; H and W must be multiples of
                the patch size.

        Returns:
            tuple[Tensor]: One ``(B, C, H/p, W/p)`` map per ``out_indices``
            (``out_type='featmap'``) or ``(B, N, C)`` tokens
            (``out_type='raw'``).
        """
        self.check_input_size(x.shape[-2:])
        x, patch_hw = self.patch_embed(x)
        x = self._add_pos_embed(x, patch_hw)
        x = self.pre_norm(self.drop_after_pos(x))
        outs = []
        # non-reentrant checkpointing also serves blocks whose input needs
        # no gradient (frozen early stages); under no_grad it is pointless
        checkpointed = self.with_cp and torch.is_grad_enabled()
        for i, layer in enumerate(self.layers):
            if checkpointed:
                x = cp.checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_hw))
        return tuple(outs)

    def get_last_selfattention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention maps of the last block, ``(B, heads, N, N)``.

        Used by the visualisation tools; training never calls it.
        """
        self.check_input_size(x.shape[-2:])
        x, patch_hw = self.patch_embed(x)
        x = self.pre_norm(self._add_pos_embed(x, patch_hw))
        for layer in self.layers[:-1]:
            x = layer(x)
        last = self.layers[-1]
        attn = last.attn
        y = last.ln1(x)
        B, N, _ = y.shape
        qkv = attn.qkv(y).reshape(B, N, 3, attn.num_heads,
                                  attn.head_dims).permute(2, 0, 3, 1, 4)
        q, k = qkv[0], qkv[1]
        return ((q * attn.head_dims**-0.5) @ k.transpose(-2, -1)).softmax(-1)
