# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Photometric operations on small BGR uint8 crops, matching torchvision's
PIL kernels (``ImageEnhance`` / ``Image.blend``, ``convert('HSV')``,
``ImageFilter.GaussianBlur``, ``ImageOps.solarize``).

Each function takes and returns an ``(H, W, 3)`` uint8 array and never goes
through float images: per-value operations are 256-entry look-up tables
(``cv2.LUT``) and the others are OpenCV's fixed-point kernels, so one op on
a 224x224 crop costs tens of microseconds instead of the 0.1-1.8 ms of the
PIL round trips (numbers in docs/benchmarks.md).
"""
import cv2
import numpy as np

__all__ = [
    'adjust_brightness', 'adjust_contrast', 'adjust_saturation',
    'adjust_hue', 'to_grayscale', 'gaussian_blur', 'solarize', 'gray_mean'
]

_VALUES = np.arange(256, dtype=np.float32)


def _blend_lut(degenerate: float, factor: float) -> np.ndarray:
    """LUT of ``Image.blend(degenerate, img, factor)`` for uint8 values.

    Pillow computes ``in1 + alpha * (in2 - in1)`` in float32, clips to
    [0, 255] and truncates towards zero; doing the same here keeps the
    quantisation (and so the mean) of the official pipeline.
    """
    out = np.float32(degenerate) + np.float32(factor) * (
        _VALUES - np.float32(degenerate))
    return np.clip(out, 0, 255).astype(np.uint8)


def adjust_brightness(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Brightness``: blend with black."""
    return cv2.LUT(img, _blend_lut(0.0, factor))


def gray_mean(img: np.ndarray) -> int:
    """Rounded mean of the ITU-R 601 luma, as ``ImageEnhance.Contrast``."""
    return int(cv2.mean(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))[0] + 0.5)


def adjust_contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Contrast``: blend with the mean grey level."""
    return cv2.LUT(img, _blend_lut(gray_mean(img), factor))


def to_grayscale(img: np.ndarray) -> np.ndarray:
    """``convert('L')`` replicated to 3 channels (``RandomGrayscale``)."""
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY),
                        cv2.COLOR_GRAY2BGR)


def adjust_saturation(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Color``: blend with the image's grayscale.

    ``addWeighted`` rounds to nearest; the ``-0.5`` offset turns that into
    Pillow's truncation (for the non-negative values that are not clipped).
    """
    return cv2.addWeighted(img, factor, to_grayscale(img), 1.0 - factor,
                           -0.5)


def adjust_hue(img: np.ndarray, factor: float) -> np.ndarray:
    """torchvision's PIL ``adjust_hue``: shift H in 8-bit HSV.

    OpenCV's ``*_HSV_FULL`` conversions use the same 0-255 hue circle as
    Pillow's ``HSV`` mode; the shift is ``int(factor * 255)`` wrapped
    modulo 256 as torchvision's uint8 overflow does.
    """
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL)
    shift = int(factor * 255) % 256
    if shift:
        hue = hsv[..., 0]
        # uint8 addition wraps around the circle, as in torchvision
        np.add(hue, np.uint8(shift), out=hue, casting='unsafe')
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL)


def gaussian_blur(img: np.ndarray, radius: float) -> np.ndarray:
    """``ImageFilter.GaussianBlur(radius)``.

    Pillow approximates a Gaussian of standard deviation ``radius`` with
    three box blurs of the same variance, extending the edges; a true
    Gaussian of that sigma with replicated borders is used here.
    """
    return cv2.GaussianBlur(
        img, (0, 0), sigmaX=radius, borderType=cv2.BORDER_REPLICATE)


_SOLARIZE = {}


def solarize(img: np.ndarray, threshold: int = 128) -> np.ndarray:
    """``ImageOps.solarize``: invert values at or above ``threshold``."""
    lut = _SOLARIZE.get(threshold)
    if lut is None:
        values = np.arange(256)
        lut = np.where(values < threshold, values, 255 - values)
        lut = _SOLARIZE[threshold] = lut.astype(np.uint8)
    return cv2.LUT(img, lut)
