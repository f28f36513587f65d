# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Random parameters of DINO's multi-crop views, drawn in one vectorised
call per image (CPU transform) or per batch (data preprocessor).

The distributions are exactly those of the official pipeline
(``DataAugmentationDINO`` in facebookresearch/dino ``main_dino.py``):
torchvision's ``RandomResizedCrop.get_params`` with its 10 tries and
centre-crop fallback, ``RandomHorizontalFlip``, ``RandomApply(ColorJitter)``
with a random order of the four ops, ``RandomGrayscale`` and DINO's
``GaussianBlur`` / ``Solarization``. Only the random source differs: the
caller passes uniform [0, 1) numbers, so the same code serves numpy (worker
processes, seeded by mmengine) and torch (on the batch's device).
"""
import math
from typing import Dict, Sequence, Tuple

import numpy as np

__all__ = [
    'CROP_UNIFORMS', 'PHOTOMETRIC_UNIFORMS', 'sample_crops',
    'sample_photometric', 'jitter_ranges'
]

CROP_TRIES = 10  # torchvision's RandomResizedCrop.get_params
# per view: 2 per try (area, log-ratio), 2 for the position, 1 for the flip
CROP_UNIFORMS = 2 * CROP_TRIES + 3
# per view: apply jitter, 4 factors, 4 order keys, grayscale, blur, radius,
# solarize
PHOTOMETRIC_UNIFORMS = 13


def sample_crops(height: int, width: int, u: np.ndarray,
                 scale: Tuple[float, float], ratio: Tuple[float, float],
                 flip_prob: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
    """``RandomResizedCrop.get_params`` and the flip coin for ``n`` views.

    Args:
        height (int): Image height.
        width (int): Image width.
        u (np.ndarray): ``(n, CROP_UNIFORMS)`` uniforms in [0, 1).
        scale (tuple[float, float]): Range of the crop's area fraction.
        ratio (tuple[float, float]): Range of the aspect ratio (w / h),
            sampled log-uniformly.
        flip_prob (float): Probability of a horizontal flip.

    Returns:
        tuple: ``(n, 4)`` int boxes ``(top, left, h, w)`` and ``(n,)`` bool
        flips (``u < flip_prob``, as ``torch.rand(1) < p``).
    """
    tries = u[:, :2 * CROP_TRIES].reshape(-1, CROP_TRIES, 2)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * tries[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = np.exp(log_lo + (log_hi - log_lo) * tries[..., 1])
    # np.round rounds half to even, as Python's round() in torchvision
    w = np.round(np.sqrt(area * aspect)).astype(np.int64)
    h = np.round(np.sqrt(area / aspect)).astype(np.int64)
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    rows = np.arange(len(u))
    first = ok.argmax(1)
    h, w = h[rows, first], w[rows, first]
    # randint(0, height - h + 1): floor of a uniform over that many values
    top = np.floor(u[:, -3] * (height - h + 1)).astype(np.int64)
    left = np.floor(u[:, -2] * (width - w + 1)).astype(np.int64)
    missed = ~ok.any(1)
    if missed.any():  # torchvision's fallback: a centre crop
        in_ratio = width / height
        if in_ratio < min(ratio):
            fw, fh = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            fw, fh = int(round(height * max(ratio))), height
        else:
            fw, fh = width, height
        h[missed], w[missed] = fh, fw
        top[missed], left[missed] = (height - fh) // 2, (width - fw) // 2
    boxes = np.stack([top, left, h, w], axis=1)
    return boxes, u[:, -1] < flip_prob


def jitter_ranges(brightness: float, contrast: float, saturation: float,
                  hue: float) -> np.ndarray:
    """torchvision ``ColorJitter`` factor ranges, ``(4, 2)`` low/high."""
    return np.array([[max(0.0, 1 - brightness), 1 + brightness],
                     [max(0.0, 1 - contrast), 1 + contrast],
                     [max(0.0, 1 - saturation), 1 + saturation],
                     [-hue, hue]], dtype=np.float64)


def sample_photometric(u, ranges: np.ndarray, jitter_prob: float,
                       grayscale_prob: float, blur_prob, solarize_prob,
                       blur_radius: Sequence[float]) -> Dict:
    """Photometric parameters of ``n`` views.

    Works on numpy arrays and on torch tensors alike (only operators and
    methods both have are used), so the CPU transform and the batched data
    preprocessor share one definition of the distributions.

    Args:
        u (np.ndarray | Tensor): ``(n, PHOTOMETRIC_UNIFORMS)`` uniforms.
        ranges (np.ndarray): :func:`jitter_ranges` output.
        jitter_prob (float): ``RandomApply`` probability of the jitter.
        grayscale_prob (float): ``RandomGrayscale`` probability.
        blur_prob (float | array): Blur probability, per view or scalar.
        solarize_prob (float | array): Solarize probability.
        blur_radius (Sequence[float]): Uniform radius range (Pillow's
            radius is the Gaussian's standard deviation).

    Returns:
        dict: ``jitter``, ``gray``, ``blur``, ``solarize`` (bool, ``(n,)``),
        ``factors`` (``(n, 4)``: brightness, contrast, saturation, hue),
        ``order`` (``(n, 4)``: a random permutation of the 4 ops, as
        ``torch.randperm(4)``) and ``radius`` (``(n,)``).
    """
    low, span = ranges[:, 0], ranges[:, 1] - ranges[:, 0]
    if not isinstance(u, np.ndarray):  # a torch tensor: same device/dtype
        low, span = u.new_tensor(low), u.new_tensor(span)
    lo_r, hi_r = blur_radius
    return dict(
        jitter=u[:, 0] < jitter_prob,
        factors=low + span * u[:, 1:5],
        # argsort of i.i.d. uniforms is a uniformly random permutation
        order=u[:, 5:9].argsort(-1),
        gray=u[:, 9] < grayscale_prob,
        blur=u[:, 10] < blur_prob,
        radius=lo_r + (hi_r - lo_r) * u[:, 11],
        solarize=u[:, 12] < solarize_prob)
