# Copyright (c) selfpatch_mm contributors. All rights reserved.
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from .multicrop_sampling import (CROP_UNIFORMS, PHOTOMETRIC_UNIFORMS,
                                 jitter_ranges, sample_crops,
                                 sample_photometric)
from .uint8_photometric import (adjust_brightness, adjust_contrast,
                                adjust_hue, adjust_saturation, gaussian_blur,
                                solarize, to_grayscale)

__all__ = ['DINOMultiCrop']

_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation,
               adjust_hue)


def _per_view(value: Union[float, Sequence[float]], n: int,
              name: str) -> List[float]:
    """A scalar for every view, or one value per view."""
    if isinstance(value, (int, float)):
        return [float(value)] * n
    value = [float(v) for v in value]
    if len(value) != n:
        raise ValueError(f'DINOMultiCrop: {name} needs {n} values (one per '
                         f'view), got {value}.')
    return value


@TRANSFORMS.register_module()
class DINOMultiCrop(BaseTransform):
    """DINO's multi-crop augmentation in one transform, on uint8 arrays.

    The views and their distributions are those of ``DataAugmentationDINO``
    (facebookresearch/dino ``main_dino.py``, used by alinlab/SelfPatch):
    ``num_global_crops`` crops at ``global_crop_size`` and
    ``num_local_crops`` at ``local_crop_size``, each a
    ``RandomResizedCrop`` (bicubic, antialiased), a horizontal flip, a
    ``ColorJitter`` applied with ``jitter_prob`` (its four ops in random
    order), ``RandomGrayscale``, a Gaussian blur and, on some views, a
    solarization. Defaults are DINO's; the SelfPatch configs set their
    scales. Configs set a few numbers instead of a 30-line ``MultiView``.

    It is faster than the torchvision pipeline because every step stays on
    uint8 arrays: one crop+resize per view with torch's uint8 antialiased
    bicubic kernel (Pillow's filter, within 0.01 grey level), the flip on
    the small output, look-up tables for brightness, contrast and solarize,
    and OpenCV's fixed-point kernels for saturation, hue, grayscale and
    blur (see ``uint8_photometric``). Nothing is normalised here: the data
    preprocessor does it on the device.

    Required keys: ``img`` (BGR uint8, ``(H, W, 3)`` or ``(H, W)``).
    Modified keys: ``img`` becomes the list of views (BGR uint8, global
    crops first, as ``MultiView`` + ``PackInputs`` expect).
    Added keys: ``multicrop_photometric`` when ``photometric='device'``
    (the settings the data preprocessor applies), ``multicrop_params``
    when ``record_params=True`` (the sampled parameters, for tests).

    Args:
        num_global_crops (int): Number of global views. Defaults to 2.
        global_crop_size (int): Their side in pixels. Defaults to 224.
        global_crops_scale (Sequence[float]): Their area range, as a
            fraction of the image. Defaults to (0.4, 1.0).
        num_local_crops (int): Number of local views. Defaults to 8.
        local_crop_size (int): Their side. Defaults to 96.
        local_crops_scale (Sequence[float]): Their area range. Defaults to
            (0.05, 0.4).
        ratio (Sequence[float]): Aspect-ratio range. Defaults to (3/4, 4/3).
        flip_prob (float): Horizontal flip probability. Defaults to 0.5.
        jitter_prob (float): Probability of the colour jitter. Defaults to
            0.8.
        brightness, contrast, saturation, hue (float): ``ColorJitter``
            strengths. Defaults to 0.4, 0.4, 0.2, 0.1.
        grayscale_prob (float): Defaults to 0.2.
        blur_radius (Sequence[float]): Uniform range of the blur radius
            (the Gaussian's sigma). Defaults to (0.1, 2.0).
        global_blur_prob (float | Sequence[float]): Blur probability of the
            global views, one per view or one for all. Defaults to
            (1.0, 0.1).
        local_blur_prob (float): Defaults to 0.5.
        global_solarize_prob (float | Sequence[float]): Defaults to
            (0.0, 0.2).
        local_solarize_prob (float): Defaults to 0.0.
        solarize_threshold (int): Defaults to 128.
        photometric (str): ``'cpu'`` applies jitter, grayscale, blur and
            solarize here; ``'device'`` leaves them to
            ``MultiCropDataPreprocessor`` (batched on the GPU), so the CPU
            only decodes, crops, resizes and flips. Defaults to 'cpu'.
        record_params (bool): Store the sampled parameters in
            ``results['multicrop_params']``. Defaults to False.
    """

    def __init__(self,
                 num_global_crops: int = 2,
                 global_crop_size: int = 224,
                 global_crops_scale: Sequence[float] = (0.4, 1.0),
                 num_local_crops: int = 8,
                 local_crop_size: int = 96,
                 local_crops_scale: Sequence[float] = (0.05, 0.4),
                 ratio: Sequence[float] = (3 / 4, 4 / 3),
                 flip_prob: float = 0.5,
                 jitter_prob: float = 0.8,
                 brightness: float = 0.4,
                 contrast: float = 0.4,
                 saturation: float = 0.2,
                 hue: float = 0.1,
                 grayscale_prob: float = 0.2,
                 blur_radius: Sequence[float] = (0.1, 2.0),
                 global_blur_prob: Union[float, Sequence[float]] = (1.0, 0.1),
                 local_blur_prob: float = 0.5,
                 global_solarize_prob: Union[float,
                                             Sequence[float]] = (0.0, 0.2),
                 local_solarize_prob: float = 0.0,
                 solarize_threshold: int = 128,
                 photometric: str = 'cpu',
                 record_params: bool = False) -> None:
        if photometric not in ('cpu', 'device'):
            raise ValueError("DINOMultiCrop: photometric must be 'cpu' or "
                             f"'device', got {photometric!r}.")
        if not 0 <= hue <= 0.5:
            raise ValueError(f'DINOMultiCrop: hue must be in [0, 0.5], got '
                             f'{hue}.')
        self.num_global = num_global_crops
        self.num_views = num_global_crops + num_local_crops
        self.sizes = ([int(global_crop_size)] * num_global_crops +
                      [int(local_crop_size)] * num_local_crops)
        self.scales = ([tuple(global_crops_scale)] * num_global_crops +
                       [tuple(local_crops_scale)] * num_local_crops)
        self.ratio = tuple(ratio)
        self.flip_prob = flip_prob
        self.photometric = photometric
        self.record_params = record_params
        self.solarize_threshold = int(solarize_threshold)
        # everything the photometric stage needs, as plain Python values:
        # with photometric='device' it travels with each sample to the
        # data preprocessor, so both stages read one definition
        self.photometric_cfg = dict(
            jitter_prob=float(jitter_prob),
            ranges=jitter_ranges(brightness, contrast, saturation,
                                 hue).tolist(),
            grayscale_prob=float(grayscale_prob),
            blur_prob=_per_view(global_blur_prob, num_global_crops,
                                'global_blur_prob') +
            [float(local_blur_prob)] * num_local_crops,
            solarize_prob=_per_view(global_solarize_prob, num_global_crops,
                                    'global_solarize_prob') +
            [float(local_solarize_prob)] * num_local_crops,
            blur_radius=[float(r) for r in blur_radius],
            solarize_threshold=self.solarize_threshold)
        self._ranges = np.asarray(self.photometric_cfg['ranges'])
        self._blur_prob = np.asarray(self.photometric_cfg['blur_prob'])
        self._solarize_prob = np.asarray(
            self.photometric_cfg['solarize_prob'])

    @property
    def view_sizes(self) -> List[Tuple[int, int]]:
        """``(H, W)`` of every view, in output order."""
        return [(s, s) for s in self.sizes]

    def _sample(self, height: int, width: int) -> Dict[str, np.ndarray]:
        """All random parameters of one image's views, in 1 RNG call."""
        u = np.random.random_sample(
            (self.num_views, CROP_UNIFORMS + PHOTOMETRIC_UNIFORMS))
        g = self.num_global
        boxes, flips = zip(*[
            sample_crops(height, width, u[rows, :CROP_UNIFORMS],
                         self.scales[rows.start], self.ratio, self.flip_prob)
            for rows in (slice(0, g), slice(g, self.num_views))
            if rows.stop > rows.start
        ])
        params = dict(
            crop=np.concatenate(boxes), flip=np.concatenate(flips))
        if self.photometric == 'device':  # drawn by the data preprocessor
            return params
        cfg = self.photometric_cfg
        params.update(sample_photometric(
            u[:, CROP_UNIFORMS:], self._ranges, cfg['jitter_prob'],
            cfg['grayscale_prob'], self._blur_prob, self._solarize_prob,
            cfg['blur_radius']))
        return params

    @staticmethod
    def _resized_crop(image: torch.Tensor, box: np.ndarray, size: int,
                      flip: bool) -> np.ndarray:
        """Crop ``box`` (top, left, h, w) of CHW uint8 ``image``, resize to
        ``size`` (antialiased bicubic), flip; an HWC uint8 array."""
        top, left, h, w = (int(b) for b in box)
        crop = image[:, top:top + h, left:left + w].unsqueeze(0)
        # channels-last in, channels-last out: the result is an HWC array
        # without a copy
        crop = crop.contiguous(memory_format=torch.channels_last)
        out = F.interpolate(
            crop, size=(size, size), mode='bicubic', antialias=True,
            align_corners=False)
        view = np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())
        # flipping the small output is cheaper than flipping the crop, and
        # the same: the resize kernel is symmetric
        return cv2.flip(view, 1) if flip else view

    def _photometric(self, view: np.ndarray, p: Dict, k: int) -> np.ndarray:
        """Jitter (in its random order), grayscale, blur and solarize view
        ``k`` with the parameters ``p`` drawn by :meth:`_sample`."""
        if p['jitter'][k]:
            for op in p['order'][k]:
                view = _JITTER_OPS[op](view, float(p['factors'][k, op]))
        if p['gray'][k]:
            view = to_grayscale(view)
        if p['blur'][k]:
            view = gaussian_blur(view, float(p['radius'][k]))
        if p['solarize'][k]:
            view = solarize(view, self.solarize_threshold)
        return view

    def transform(self, results: Dict) -> Optional[Dict]:
        """Make the views of ``results['img']``.

        Args:
            results (dict): Result dict with a decoded ``img``.

        Returns:
            dict: ``results`` with ``img`` the list of views.
        """
        img = results['img']
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        height, width = img.shape[:2]
        p = self._sample(height, width)
        # a CHW view of the HWC array: crops are slices, no copies
        image = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
        views = []
        for k, size in enumerate(self.sizes):
            view = self._resized_crop(image, p['crop'][k], size,
                                      p['flip'][k])
            if self.photometric == 'cpu':
                view = self._photometric(view, p, k)
            views.append(view)
        results['img'] = views
        if self.photometric == 'device':
            results['multicrop_photometric'] = self.photometric_cfg
        if self.record_params:
            results['multicrop_params'] = p
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(sizes={self.sizes}, '
                f'scales={self.scales}, ratio={self.ratio}, '
                f'flip_prob={self.flip_prob}, photometric='
                f'{self.photometric!r}, {self.photometric_cfg})')
