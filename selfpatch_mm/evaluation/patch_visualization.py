# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Pictures of what a SelfPatch ViT learned.

SelfPatch (https://arxiv.org/abs/2206.07990) treats the most similar
neighbours of a patch as its positives. :func:`visualize_patches` draws

* ``positives.png``: for a few query patches, the candidate neighbourhood
  and the top-k positives, found by the training code itself
  (:meth:`SelfPatchNeck.positives`);
* ``aggregation_attention.png``: the attention of the aggregation module's
  image token over the patches, one panel per head, then their mean;
* ``last_block_attention.png``: the last ViT block's self-attention per
  head. The backbone has no [CLS] token, so the top row shows the attention
  of the centre patch (framed in white) and the bottom row the attention
  each patch receives, averaged over all query patches;
* ``pca.png``: the image and the first 3 principal components of the patch
  features as RGB.

Every panel is the resized input (sides multiples of the patch size)
enlarged by an integer ``scale``; strips put panels side by side without
gaps.
"""
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from ..models.utils import neighbour_index
from .pretrained import PretrainedSelfPatch

__all__ = [
    'resize_to_patches', 'spread_queries', 'draw_positives', 'pca_rgb',
    'heatmap_overlay', 'visualize_patches'
]

# BGR colours of the query patches.
_COLOURS = [(0, 0, 255), (255, 128, 0), (0, 200, 0), (255, 0, 255),
            (0, 215, 255), (255, 255, 0), (128, 0, 255), (0, 128, 255)]


def resize_to_patches(img: np.ndarray, size: int,
                      patch_size: int) -> np.ndarray:
    """Resize so the short side is about ``size`` and both sides are
    multiples of ``patch_size`` (rounded to the nearest, at least one)."""
    h, w = img.shape[:2]
    scale = size / min(h, w)

    def snap(v: float) -> int:
        return max(1, int(round(v / patch_size))) * patch_size

    return cv2.resize(
        img, (snap(w * scale), snap(h * scale)),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def spread_queries(hw: Tuple[int, int], num: int) -> List[int]:
    """``num`` flat patch indices spread evenly over an ``(H, W)`` grid."""
    h, w = hw
    num = max(1, min(num, h * w))
    cols = math.ceil(math.sqrt(num * w / h))
    rows = math.ceil(num / cols)
    out = []
    for i in range(rows):
        for j in range(cols):
            y = min(h - 1, int((i + 0.5) * h / rows))
            x = min(w - 1, int((j + 0.5) * w / cols))
            if len(out) < num and y * w + x not in out:
                out.append(y * w + x)
    return out


def _cell(idx: int, w: int,
          cell: int) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    y, x = divmod(int(idx), w)
    return (x * cell, y * cell), ((x + 1) * cell - 1, (y + 1) * cell - 1)


def draw_positives(canvas: np.ndarray,
                   hw: Tuple[int, int],
                   queries: Sequence[int],
                   positives: torch.Tensor,
                   valid: torch.Tensor,
                   window: int = 3,
                   border: str = 'wrap') -> np.ndarray:
    """Draw query patches, their candidates and their positives.

    Args:
        canvas (np.ndarray): BGR image ``(H * c, W * c, 3)``, ``c`` being the
            displayed cell size; a copy is drawn on.
        hw (tuple[int, int]): Patch grid ``(H, W)``.
        queries (Sequence[int]): Flat indices of the query patches.
        positives (Tensor): ``(N, k)`` positive indices (most similar first).
        valid (Tensor): ``(N, k)`` validity of ``positives``.
        window (int): Neighbourhood size used by the matching.
        border (str): Its border mode (``'wrap'`` candidates may sit on the
            opposite edge, and are drawn there).

    Returns:
        np.ndarray: The drawn canvas. A query is a filled translucent cell,
        its candidates thin outlines, its positives thick outlines with
        their rank (1 = most similar).
    """
    h, w = hw
    cell = canvas.shape[0] // h
    out = canvas.copy()
    cand, cand_valid = neighbour_index(hw, window, border)
    thick = max(2, cell // 6)
    for n, q in enumerate(queries):
        colour = _COLOURS[n % len(_COLOURS)]
        overlay = out.copy()
        cv2.rectangle(overlay, *_cell(q, w, cell), colour, -1)
        out = cv2.addWeighted(overlay, 0.45, out, 0.55, 0)
        for c, ok in zip(cand[q].tolist(), cand_valid[q].tolist()):
            if ok:
                cv2.rectangle(out, *_cell(c, w, cell), colour, 1)
        for rank, (p, ok) in enumerate(
                zip(positives[q].tolist(), valid[q].tolist()), 1):
            if not ok:
                continue
            tl, br = _cell(p, w, cell)
            # Keep the thick outline inside its cell: neighbouring positives
            # stay distinguishable.
            half = thick // 2
            cv2.rectangle(out, (tl[0] + half, tl[1] + half),
                          (br[0] - half, br[1] - half), colour, thick)
            cv2.putText(out, str(rank), (tl[0] + thick + 1, br[1] - thick - 1),
                        cv2.FONT_HERSHEY_SIMPLEX, max(0.3, cell / 48), colour,
                        1, cv2.LINE_AA)
    return out


def pca_rgb(feats: torch.Tensor) -> np.ndarray:
    """First 3 principal components of ``(N, C)`` features as ``(N, 3)``
    values in ``[0, 1]`` (each component min-max scaled; signs fixed so the
    largest loading is positive, for reproducible colours)."""
    x = feats.double() - feats.double().mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    comps = v[:3]
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    proj = x @ (comps * signs).T
    if proj.shape[1] < 3:  # fewer than 3 channels or patches
        proj = torch.cat(
            [proj, proj.new_zeros(len(proj), 3 - proj.shape[1])], 1)
    lo, hi = proj.min(0).values, proj.max(0).values
    return ((proj - lo) / (hi - lo).clamp_min(1e-12)).float().numpy()


def heatmap_overlay(image: np.ndarray,
                    values: np.ndarray,
                    alpha: float = 0.6) -> np.ndarray:
    """Blend a ``(H, W)`` map (min-max scaled) as a JET heatmap onto a BGR
    ``image`` whose sides are multiples of ``H`` and ``W``."""
    v = values.astype(np.float32) - float(values.min())
    v = v / max(float(v.max()), 1e-12)
    heat = cv2.applyColorMap((v * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.resize(
        heat, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    return cv2.addWeighted(heat, alpha, image, 1 - alpha, 0)


@torch.no_grad()
def visualize_patches(model: PretrainedSelfPatch,
                      img_bgr: np.ndarray,
                      out_dir: str,
                      size: int = 224,
                      num_queries: int = 4,
                      scale: Optional[int] = None,
                      queries: Optional[Sequence[int]] = None) -> Dict:
    """Write the pictures described in the module docstring.

    Args:
        model (PretrainedSelfPatch): Backbone and :class:`SelfPatchNeck`.
        img_bgr (np.ndarray): ``(H, W, 3)`` uint8 BGR image, any size.
        out_dir (str): Output folder (created).
        size (int): Short side the image is resized to.
        num_queries (int): Query patches, spread over the grid.
        scale (int, optional): Display enlargement; defaults to the smallest
            integer making the short side at least 224 pixels.
        queries (Sequence[int], optional): Flat query indices, overriding
            ``num_queries``.

    Returns:
        dict: ``files`` (written paths), ``hw`` (patch grid), ``scale``,
        ``queries``, ``positives`` (``{query: [indices]}``, the valid
        positives drawn, most similar first) and ``tokens`` (the ``(N, C)``
        features the positives were matched on).
    """
    if model.neck is None or not hasattr(model.neck, 'positives'):
        raise ValueError('visualize_patches needs a SelfPatchNeck: the '
                         'config or checkpoint has no aggregation neck.')
    img = resize_to_patches(img_bgr, size, model.patch_size)
    H, W = img.shape[:2]
    scale = scale or max(1, math.ceil(224 / min(H, W)))
    shown = cv2.resize(
        img, (W * scale, H * scale), interpolation=cv2.INTER_NEAREST)
    x = model.preprocess(img)[None]
    featmap = model.featmap(x)
    neck = model.neck
    tokens, hw = neck.to_tokens(featmap)
    # The training code's own matching: what the teacher uses as positives.
    pos, valid = neck.positives(tokens, hw)
    pos, valid = pos[0].cpu(), valid[0].cpu()
    queries = list(queries) if queries is not None else spread_queries(
        hw, num_queries)
    os.makedirs(out_dir, exist_ok=True)
    files = []

    def save(name: str, picture: np.ndarray) -> None:
        path = osp.join(out_dir, name)
        cv2.imwrite(path, picture)
        files.append(path)

    save(
        'positives.png',
        draw_positives(shown, hw, queries, pos, valid, neck.window,
                       neck.border))
    cls_attn = neck.cls_attention([featmap])[0].cpu().numpy()  # (h, H, W)
    save(
        'aggregation_attention.png',
        np.concatenate([heatmap_overlay(shown, a) for a in cls_attn] +
                       [heatmap_overlay(shown, cls_attn.mean(0))], 1))
    attn = model.backbone.get_last_selfattention(x)[0].cpu()  # (h, N, N)
    centre = (hw[0] // 2) * hw[1] + hw[1] // 2
    centre_row = []
    for a in attn[:, centre].reshape(-1, *hw).numpy():
        panel = heatmap_overlay(shown, a)
        cv2.rectangle(panel, *_cell(centre, hw[1], H * scale // hw[0]),
                      (255, 255, 255), 1)
        centre_row.append(panel)
    mean_row = [
        heatmap_overlay(shown, a)
        for a in attn.mean(1).reshape(-1, *hw).numpy()
    ]
    save(
        'last_block_attention.png',
        np.concatenate(
            [np.concatenate(centre_row, 1),
             np.concatenate(mean_row, 1)], 0))
    rgb = pca_rgb(tokens[0].cpu()).reshape(*hw, 3)
    pca = cv2.resize(
        (rgb[..., ::-1] * 255).astype(np.uint8), (W * scale, H * scale),
        interpolation=cv2.INTER_NEAREST)
    save('pca.png', np.concatenate([shown, pca], 1))
    return dict(
        files=files,
        hw=hw,
        scale=scale,
        queries=queries,
        positives={
            q: [int(p) for p, ok in zip(pos[q], valid[q]) if ok]
            for q in queries
        },
        tokens=tokens[0])
