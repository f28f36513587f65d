# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Position embeddings: adapt a stored one to a model's patch grid.

DINO-style files store a [CLS] position that the SelfPatch ViT lacks, and a
checkpoint trained at one crop size is loaded by models of other sizes
(dense transfer at 512 px, pictures at 96 px).
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = [
    'drop_cls_pos_embed', 'interpolate_pos_embed', 'resize_pos_embed_mmseg',
    'fit_pos_embed', 'POS_EMBED_RESIZE'
]


def drop_cls_pos_embed(pos_embed: torch.Tensor) -> torch.Tensor:
    """Drop the [CLS] position of a ``(1, 1 + H*W, C)`` embedding.

    DINO's ViT stores a position for its [CLS] token; the SelfPatch
    backbone has none. Embeddings whose length is already a square are
    returned unchanged.
    """
    n = pos_embed.shape[1]
    if math.isqrt(n)**2 != n and math.isqrt(n - 1)**2 == n - 1:
        return pos_embed[:, 1:]
    return pos_embed


def _bicubic(pos_embed: torch.Tensor, src_hw: Tuple[int, int],
             dst_hw: Tuple[int, int], **interpolate_args) -> torch.Tensor:
    """``(1, Hs*Ws, C)`` -> ``(1, H*W, C)`` by bicubic ``F.interpolate``
    (in fp32) with the given ``size``/``scale_factor``."""
    if tuple(src_hw) == tuple(dst_hw):
        return pos_embed
    C = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, *src_hw, C).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), mode='bicubic', **interpolate_args)
    assert tuple(grid.shape[-2:]) == tuple(dst_hw)
    return grid.permute(0, 2, 3, 1).reshape(1, -1, C).to(pos_embed.dtype)


def interpolate_pos_embed(pos_embed: torch.Tensor, src_hw: Tuple[int, int],
                          dst_hw: Tuple[int, int]) -> torch.Tensor:
    """Resize patch position embeddings the way the official code does.

    The official ``interpolate_pos_encoding`` (DINO, reused by SelfPatch)
    passes a *scale factor* of ``(dst + 0.1) / src`` to bicubic
    interpolation. PyTorch then maps coordinates with that factor rather than
    with ``dst / src``, so the values differ from a plain ``size=`` resize
    (mmpretrain's ``resize_pos_embed``). We follow the official mapping so
    features match the released weights.

    Args:
        pos_embed (Tensor): ``(1, Hs*Ws, C)``.
        src_hw (tuple[int, int]): Grid ``(Hs, Ws)`` of ``pos_embed``.
        dst_hw (tuple[int, int]): Target grid ``(H, W)``.

    Returns:
        Tensor: ``(1, H*W, C)``.
    """
    scale = ((dst_hw[0] + 0.1) / src_hw[0], (dst_hw[1] + 0.1) / src_hw[1])
    return _bicubic(pos_embed, src_hw, dst_hw, scale_factor=scale)


def resize_pos_embed_mmseg(pos_embed: torch.Tensor, src_hw: Tuple[int, int],
                           dst_hw: Tuple[int, int]) -> torch.Tensor:
    """Resize patch position embeddings as the official *segmentation* code
    does.

    alinlab/SelfPatch ``segmentation/backbones/vit_SelfPatch.py``
    (``resize_pos_embed``, mmseg 0.x's ViT) resizes to the target *size*:
    ``resize(..., size=dst_hw, mode='bicubic', align_corners=False)``, both
    when loading the 14x14 ImageNet table into the 512x512 model and when an
    input's grid differs. That is not :func:`interpolate_pos_embed`'s
    ``(dst + 0.1) / src`` scale factor (1.8% apart on 14x14 -> 32x32).
    Arguments and result as :func:`interpolate_pos_embed`.
    """
    return _bicubic(pos_embed, src_hw, dst_hw, size=tuple(dst_hw),
                    align_corners=False)


#: The resize formulas by name: ``'dino'`` (pretraining, DINO, the official
#: detection backbone) and ``'mmseg'`` (the official segmentation backbone).
POS_EMBED_RESIZE = dict(dino=interpolate_pos_embed,
                        mmseg=resize_pos_embed_mmseg)


def fit_pos_embed(pos_embed: torch.Tensor, dst_hw: Tuple[int, int],
                  filename: str = '<checkpoint>',
                  formula: str = 'dino') -> torch.Tensor:
    """A stored ``(1, N, C)`` embedding (with or without a [CLS] position,
    on a square grid) resized to the grid ``dst_hw`` with ``formula`` (a
    key of :data:`POS_EMBED_RESIZE`).

    Raises:
        ValueError: If the stored positions do not form a square grid; the
            message names ``filename`` and the shape.
    """
    pos_embed = drop_cls_pos_embed(pos_embed)
    n = pos_embed.shape[1] if pos_embed.dim() == 3 else -1
    side = math.isqrt(max(n, 0))
    if n <= 0 or side * side != n:
        raise ValueError(f'{filename}: pos_embed of shape '
                         f'{tuple(pos_embed.shape)} is not a (1, H*W, C) '
                         'square grid.')
    return POS_EMBED_RESIZE[formula](pos_embed, (side, side), tuple(dst_hw))
