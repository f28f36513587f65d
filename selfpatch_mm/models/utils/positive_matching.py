# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Positive matching of SelfPatch (https://arxiv.org/abs/2206.07990, Sec. 3.1).

Each patch's candidates are its ``window x window - 1`` spatial neighbours;
the ``k`` most cosine-similar candidates are its positives. The official code
(``SelfPatchHead.get_local_index``) hard-codes square 14x14 and 6x6 grids;
these functions work on any ``H x W`` grid and cache the index tables.
"""
from typing import Tuple

import torch
import torch.nn.functional as F

from .precision import autocast_off

__all__ = ['neighbour_index', 'match_positives']

BORDERS = ('wrap', 'valid')


def _build_neighbour_index(h: int, w: int, window: int,
                           border: str) -> Tuple[torch.Tensor, torch.Tensor]:
    if border not in BORDERS:
        raise ValueError(f'border must be one of {BORDERS}, got {border!r}.')
    if window < 3 or window % 2 == 0:
        raise ValueError(f'window must be an odd number >= 3, got {window}.')
    if border == 'wrap' and (h < window or w < window):
        raise ValueError(
            f"border='wrap' needs a patch grid of at least {window}x{window}"
            f' (got {h}x{w}): neighbours would wrap onto each other. Use '
            "border='valid' for such small grids.")
    r = window // 2
    offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
               if (dy, dx) != (0, 0)]
    dy = torch.tensor([o[0] for o in offsets])
    dx = torch.tensor([o[1] for o in offsets])
    rows = torch.arange(h).repeat_interleave(w)[:, None] + dy  # (N, M)
    cols = torch.arange(w).repeat(h)[:, None] + dx
    valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    if border == 'wrap':
        valid = torch.ones_like(valid)
    index = (rows % h) * w + (cols % w)
    # The official table lists each patch's neighbours in ascending flat
    # index (it is built with ``nonzero``); keep that order so ``topk`` breaks
    # ties the same way. Invalid slots go last and point at a valid patch.
    key = torch.where(valid, index, index.new_full((), h * w))
    key, order = key.sort(dim=1)
    index, valid = index.gather(1, order), valid.gather(1, order)
    index = torch.where(valid, index, index[:, :1])
    return index.contiguous(), valid.contiguous()


# Built once per (grid, window, border, device): training sees few grids.
_CACHE: dict = {}


def neighbour_index(hw: Tuple[int, int],
                    window: int = 3,
                    border: str = 'wrap',
                    device: torch.device = None
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Flat indices of every patch's spatial neighbours.

    Args:
        hw (tuple[int, int]): Patch grid ``(H, W)``.
        window (int): Odd neighbourhood size; 3 gives 8 neighbours.
        border (str): ``'wrap'`` (official) wraps rows and columns around
            modulo the grid; ``'valid'`` marks out-of-grid neighbours invalid.
        device (torch.device, optional): Where the tables live.

    Returns:
        tuple[Tensor, Tensor]: ``index`` (long) and ``valid`` (bool), both
        ``(H*W, window**2 - 1)``. Tables are built once per grid and device.
    """
    h, w = int(hw[0]), int(hw[1])
    device = torch.device('cpu') if device is None else torch.device(device)
    key = (h, w, window, border, device)
    if torch.compiler.is_compiling():
        # Traced with static shapes, the tables are constants of the graph;
        # filling the cache there would change the guarded global and
        # compile the graph once more on the next call.
        index, valid = _CACHE.get(key) or _build_neighbour_index(
            h, w, window, border)
        return index.to(device), valid.to(device)
    if key not in _CACHE:
        index, valid = _build_neighbour_index(h, w, window, border)
        _CACHE[key] = (index.to(device), valid.to(device))
    return _CACHE[key]


@torch.no_grad()
def match_positives(x: torch.Tensor,
                    hw: Tuple[int, int],
                    k: int = 4,
                    window: int = 3,
                    border: str = 'wrap') -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-k most similar neighbours of every patch.

    Args:
        x (Tensor): Patch tokens ``(B, N, C)`` with ``N == H * W``,
            row-major.
        hw (tuple[int, int]): Patch grid ``(H, W)``.
        k (int): Number of positives per patch.
        window (int): Neighbourhood size.
        border (str): See :func:`neighbour_index`.

    Returns:
        tuple[Tensor, Tensor]: ``index`` ``(B, N, k)`` flat patch indices of
        the positives, most similar first, and ``valid`` ``(B, N, k)``; with
        ``border='valid'`` a patch with fewer than ``k`` in-grid neighbours
        gets invalid slots, which the aggregation masks out.
    """
    B, N, _ = x.shape
    if N != hw[0] * hw[1]:
        raise ValueError(f'{N} tokens do not form a {hw[0]}x{hw[1]} grid.')
    index, valid = neighbour_index(hw, window, border, x.device)
    if k > index.shape[1]:
        raise ValueError(f'k={k} exceeds the {index.shape[1]} neighbours of '
                         f'a {window}x{window} window.')
    # fp32 similarities also under autocast: fp16 rounding (~1e-3) would
    # reorder near-tied neighbours and change the chosen positives.
    with autocast_off(x):
        xn = F.normalize(x.float(), dim=-1)
        # One (N, N) similarity matmul per image is cheaper than gathering
        # (B, N, M, C) neighbour copies, and serves any grid and border.
        sim = torch.bmm(xn, xn.transpose(1, 2))
    sim = sim.gather(2, index.expand(B, -1, -1))
    sim = sim.masked_fill(~valid, float('-inf'))
    top = sim.topk(k, dim=-1).indices
    return (index.expand(B, -1, -1).gather(2, top),
            valid.expand(B, -1, -1).gather(2, top))
