# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""DINO's photometric augmentation on a batch of float RGB images in
[0, 255], with different random parameters for every image.

The kernels follow the uint8 ones the CPU pipeline uses
(``selfpatch_mm.datasets.transforms.uint8_photometric``, which match
torchvision's PIL kernels): blends clip and truncate as ``Image.blend``,
grey levels are rounded luma, so the outputs stay integer-valued and keep
the official quantisation. RGB to HSV is torchvision's tensor ``_rgb2hsv``
(BSD-3-Clause); HSV to RGB its closed form.
"""
import math
from typing import Dict

import torch
import torch.nn.functional as F

__all__ = ['apply_photometric']


def _luma(x: torch.Tensor) -> torch.Tensor:
    """``(n, 1, H, W)`` rounded ITU-R 601 luma of RGB ``x``."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] +
            0.114 * x[:, 2:3]).round()


def _blend(x: torch.Tensor, degenerate, factor: torch.Tensor) -> torch.Tensor:
    """``Image.blend(degenerate, x, factor)``: clip, then truncate."""
    f = factor.view(-1, 1, 1, 1)
    return (degenerate + f * (x - degenerate)).clamp_(0, 255).floor_()


def _brightness(x, f):
    return _blend(x, 0.0, f)


def _contrast(x, f):
    mean = (_luma(x).mean((1, 2, 3), keepdim=True) + 0.5).floor()
    return _blend(x, mean, f)


def _saturation(x, f):
    return _blend(x, _luma(x), f)


def _rgb_to_hsv(img: torch.Tensor):
    r, g, b = img.unbind(1)
    maxc = img.amax(1)
    minc = img.amin(1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_divisor = torch.where(eqc, ones, cr)
    rc = (maxc - r) / cr_divisor
    gc = (maxc - g) / cr_divisor
    bc = (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return h, s, maxc


def _hsv_to_rgb(h, s, v) -> torch.Tensor:
    """The closed form of the sextant table: channel ``n`` (5, 3, 1 for R,
    G, B) is ``v - v s clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (n + 6 h) mod 6``; no (n, 3, 6, H, W) table in memory."""
    n = h.new_tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * h.unsqueeze(1), 6.0)
    weight = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    v, s = v.unsqueeze(1), s.unsqueeze(1)
    return v - v * s * weight


def _hue(x, f):
    h, s, v = _rgb_to_hsv(x / 255.0)
    # torchvision shifts the 8-bit hue by int(factor * 255) (toward zero)
    h = torch.remainder(h + torch.trunc(f * 255.0).view(-1, 1, 1) / 255.0,
                        1.0)
    return (_hsv_to_rgb(h, s, v) * 255.0).round_()


_JITTER = (_brightness, _contrast, _saturation, _hue)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor,
                   max_sigma: float) -> torch.Tensor:
    """Separable Gaussian, one sigma per image, replicated borders."""
    n, c, height, width = x.shape
    half = max(1, math.ceil(3.0 * max_sigma))
    k = torch.arange(-half, half + 1, device=x.device, dtype=x.dtype)
    w = torch.exp(-0.5 * (k / sigma.view(-1, 1))**2)
    w = (w / w.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*c, K)
    y = x.reshape(1, n * c, height, width)
    y = F.pad(y, (half, half, half, half), mode='replicate')
    y = F.conv2d(y, w.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y, w.view(n * c, 1, -1, 1), groups=n * c)
    return y.view(n, c, height, width).round_()


def _where(mask: torch.Tensor) -> torch.Tensor:
    return mask.nonzero().squeeze(1)


def apply_photometric(x: torch.Tensor, p: Dict[str, torch.Tensor],
                      max_radius: float,
                      solarize_threshold: float = 128) -> torch.Tensor:
    """Jitter (in each image's random order), grayscale, blur, solarize.

    Args:
        x (Tensor): ``(n, 3, H, W)`` float RGB in [0, 255]; not modified.
        p (dict): Per-image parameters from
            :func:`~selfpatch_mm.datasets.transforms.multicrop_sampling.
            sample_photometric` (torch tensors on ``x``'s device).
        max_radius (float): Upper end of the blur-radius range (sets the
            kernel's support, 3 sigma).
        solarize_threshold (float): Values at or above it are inverted.

    Returns:
        Tensor: The augmented images, same shape and dtype.
    """
    x = x.clone()
    jittered = _where(p['jitter'])
    if jittered.numel():
        order = p['order'][jittered]
        for slot in range(4):  # the k-th op of every image's permutation
            for op, fn in enumerate(_JITTER):
                rows = jittered[order[:, slot] == op]
                if rows.numel():
                    x[rows] = fn(x[rows], p['factors'][rows, op])
    rows = _where(p['gray'])
    if rows.numel():
        x[rows] = _luma(x[rows]).expand(-1, 3, -1, -1)
    rows = _where(p['blur'])
    if rows.numel():
        x[rows] = _gaussian_blur(x[rows], p['radius'][rows], max_radius)
    rows = _where(p['solarize'])
    if rows.numel():
        sel = x[rows]
        x[rows] = torch.where(sel >= solarize_threshold, 255.0 - sel, sel)
    return x
