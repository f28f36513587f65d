# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Positive matching + aggregation module of SelfPatch.

Paper: https://arxiv.org/abs/2206.07990 (Sec. 3.1-3.2). Official module:
``SelfPatchHead`` in alinlab/SelfPatch ``selfpatch_vision_transformer.py``.
"""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.registry import MODELS
from torch import nn

from ..utils.class_attention import ClassAttentionBlock
from ..utils.init_cfg import is_pretrained_init
from ..utils.matching_checks import check_matching_settings, check_patch_grid
from ..utils.positive_matching import match_positives


@MODELS.register_module()
class SelfPatchNeck(BaseModule):
    """Aggregation module: class-attention blocks with a learnable query.

    Over all patches it gives the image-level [CLS] token. With
    ``with_neighbours=True`` (the official teacher) it also summarises each
    patch's ``k`` positives into that patch's token. All outputs pass the
    module's final LayerNorm, which is the ViT's only final norm.

    Args:
        in_channels (int): Token width (384 for ViT-S).
        num_heads (int): Heads of the class attention.
        k (int): Positives per patch, 1 to ``window**2 - 1``. Defaults
            to 4.
        window (int): Neighbourhood size, odd and >= 3; every patch grid
            matched must be at least ``window x window``. Defaults to 3.
        num_blocks (int): Class-attention blocks. Defaults to 2.
        border (str): ``'wrap'`` (official modulo wrap-around) or
            ``'valid'`` (ignore neighbours outside the grid).
        mlp_ratio (float): MLP ratio of the blocks.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int = 384,
                 num_heads: int = 6,
                 k: int = 4,
                 window: int = 3,
                 num_blocks: int = 2,
                 border: str = 'wrap',
                 mlp_ratio: float = 4.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        # Fail at build time, not at the first iteration after data loading.
        check_matching_settings(k, window, border)
        self.k, self.window, self.border = k, window, border
        self.cls_token = nn.Parameter(torch.zeros(1, 1, in_channels))
        self.blocks = nn.ModuleList([
            ClassAttentionBlock(in_channels, num_heads, mlp_ratio)
            for _ in range(num_blocks)
        ])
        self.norm = nn.LayerNorm(in_channels, eps=1e-6)

    def init_weights(self) -> None:
        super().init_weights()
        if is_pretrained_init(self.init_cfg):
            return
        trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    @staticmethod
    def to_tokens(
            featmap: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """``(B, C, H, W)`` map to row-major ``(B, H*W, C)`` tokens."""
        return featmap.flatten(2).transpose(1, 2), tuple(featmap.shape[-2:])

    def positives(self, x: torch.Tensor,
                  hw: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Positive indices ``(B, N, k)`` and validity of tokens ``x``.

        Raises:
            ValueError: If the grid ``hw`` is smaller than 2x2 or than the
                window.
        """
        # Checked on every call: a few integer comparisons, which
        # torch.compile evaluates while tracing (a set of the grids seen
        # would be guarded state that changes after the first call).
        check_patch_grid(hw, self.window,
                         f'an input of {hw[0]}x{hw[1]} patches')
        return match_positives(x, hw, self.k, self.window, self.border)

    def forward(self,
                inputs: Sequence[torch.Tensor],
                with_neighbours: bool = False
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Aggregate patch tokens.

        Args:
            inputs (Sequence[Tensor]): Backbone outputs; the last is used,
                ``(B, C, H, W)``.
            with_neighbours (bool): Replace each patch token by the summary
                of its positives (teacher side of the patch loss).

        Returns:
            tuple[Tensor, Tensor]: Normalised ``cls`` ``(B, C)`` and patch
            tokens ``(B, N, C)``: the patches themselves, or their neighbour
            summaries when ``with_neighbours``.
        """
        x, hw = self.to_tokens(inputs[-1])
        B, N, C = x.shape
        cls = self.cls_token.expand(B, -1, -1)
        loc = self.cls_token  # broadcast over patches: no per-patch copies
        if with_neighbours:
            idx, valid = self.positives(x, hw)
            flat_idx = (idx + torch.arange(B, device=x.device)[:, None, None] *
                        N).flatten()
            mask = (valid.reshape(B * N, -1)
                    if self.border == 'valid' else None)
        for blk in self.blocks:
            # Patch tokens do not change across blocks: project them once and
            # share the keys/values between the image and neighbour queries.
            k_ctx, v_ctx = blk.project_context(x)
            cls = blk(cls, k_ctx, v_ctx)
            if with_neighbours:
                k_loc = k_ctx.flatten(0, 1)[flat_idx].view(B * N, self.k, C)
                v_loc = v_ctx.flatten(0, 1)[flat_idx].view(B * N, self.k, C)
                loc = blk(loc, k_loc, v_loc, mask)
        patches = loc.view(B, N, C) if with_neighbours else x
        return self.norm(cls[:, 0]), self.norm(patches)

    @torch.no_grad()
    def cls_attention(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Attention of the last block's query over the patches.

        Returns:
            Tensor: ``(B, heads, H, W)``; the weight on the query token itself
            is dropped, so each map sums to at most 1.
        """
        x, hw = self.to_tokens(inputs[-1])
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        for blk in self.blocks:
            cls, attn = blk(cls, *blk.project_context(x),
                            return_attention=True)
        return attn[:, :, 0, 1:].unflatten(-1, hw)
