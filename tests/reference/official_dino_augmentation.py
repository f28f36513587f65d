# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The official torchvision multi-crop, for benchmarks and tests.

``DataAugmentationDINO``, ``GaussianBlur`` and ``Solarization`` are copied
from facebookresearch/dino (``main_dino.py``, ``utils.py``; alinlab/SelfPatch
uses them unchanged), with the crop sizes, scales and probabilities as
arguments. Images load as the official ``ImageFolder`` does
(:func:`pil_loader`). With ``record=True`` every random decision is also
written to ``last_params`` (subclasses that log what the torchvision
transforms draw, then do exactly what the parents do), so tests can compare
the distributions with :class:`~selfpatch_mm.datasets.DINOMultiCrop`'s.
Nothing here is used for training.
"""
import random
from typing import Dict, List, Optional

import torch
from PIL import Image, ImageFilter, ImageOps
from torchvision import transforms
from torchvision.transforms import functional as F

__all__ = ['DataAugmentationDINO', 'pil_loader']


def pil_loader(path: str) -> Image.Image:
    """torchvision ``ImageFolder``'s loader: decode and convert to RGB."""
    with open(path, 'rb') as f:
        img = Image.open(f)
        return img.convert('RGB')


class GaussianBlur:
    """DINO's ``utils.GaussianBlur``: PIL blur with a random radius."""

    def __init__(self, p=0.5, radius_min=0.1, radius_max=2., log=None):
        self.prob = p
        self.radius_min = radius_min
        self.radius_max = radius_max
        self.log = log

    def __call__(self, img):
        do_it = random.random() <= self.prob
        if not do_it:
            return img
        radius = random.uniform(self.radius_min, self.radius_max)
        if self.log is not None:
            self.log['radius'] = radius
        return img.filter(ImageFilter.GaussianBlur(radius=radius))


class Solarization:
    """DINO's ``utils.Solarization``."""

    def __init__(self, p, log=None):
        self.p = p
        self.log = log

    def __call__(self, img):
        if random.random() < self.p:
            if self.log is not None:
                self.log['solarize'] = True
            return ImageOps.solarize(img)
        return img


class _Logs:
    """Mixin: a torchvision transform that writes into the dict ``log``."""

    def __init__(self, *args, log, **kwargs):
        super().__init__(*args, **kwargs)
        self.log = log


class _LoggedCrop(_Logs, transforms.RandomResizedCrop):

    def get_params(self, img, scale, ratio):  # the parent's staticmethod
        box = transforms.RandomResizedCrop.get_params(img, scale, ratio)
        self.log['crop'] = box
        return box


class _LoggedFlip(_Logs, transforms.RandomHorizontalFlip):

    def forward(self, img):
        if torch.rand(1) < self.p:
            self.log['flip'] = True
            return F.hflip(img)
        return img


class _LoggedJitter(_Logs, transforms.ColorJitter):

    def get_params(self, *ranges):
        params = transforms.ColorJitter.get_params(*ranges)
        self.log['jitter'] = [params[0].tolist(), *params[1:]]
        return params


class _LoggedGrayscale(_Logs, transforms.RandomGrayscale):

    def forward(self, img):
        num_output_channels, _, _ = F.get_dimensions(img)
        if torch.rand(1) < self.p:
            self.log['gray'] = True
            return F.rgb_to_grayscale(
                img, num_output_channels=num_output_channels)
        return img


class DataAugmentationDINO:
    """``main_dino.py``'s multi-crop: 2 global views and ``local_crops_number``
    local views, as normalised float tensors.

    Args:
        global_crops_scale (tuple): Area range of the global crops.
        local_crops_scale (tuple): Area range of the local crops.
        local_crops_number (int): Number of local crops.
        global_size (int): Global crop side (224 in the paper).
        local_size (int): Local crop side (96).
        normalize (bool): End with ``ToTensor`` + ``Normalize`` as the
            official code; ``False`` returns the PIL views (for tests).
        record (bool): Log the random decisions in ``last_params``.
    """

    def __init__(self, global_crops_scale, local_crops_scale,
                 local_crops_number, global_size=224, local_size=96,
                 normalize=True, record=False):
        self.record = record
        self.last_params: List[Dict] = []
        self._log: Optional[Dict] = {} if record else None
        log = self._log
        flip = (_LoggedFlip(p=0.5, log=log) if record else
                transforms.RandomHorizontalFlip(p=0.5))
        jitter_args = dict(brightness=0.4, contrast=0.4, saturation=0.2,
                           hue=0.1)
        jitter = (_LoggedJitter(**jitter_args, log=log) if record else
                  transforms.ColorJitter(**jitter_args))
        gray = (_LoggedGrayscale(p=0.2, log=log) if record else
                transforms.RandomGrayscale(p=0.2))
        flip_and_color_jitter = transforms.Compose([
            flip,
            transforms.RandomApply([jitter], p=0.8),
            gray,
        ])
        steps = [
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406),
                                 (0.229, 0.224, 0.225)),
        ] if normalize else []
        normalize = transforms.Compose(steps)

        def crop(size, scale):
            kwargs = dict(scale=scale, interpolation=Image.BICUBIC)
            if record:
                return _LoggedCrop(size, log=log, **kwargs)
            return transforms.RandomResizedCrop(size, **kwargs)

        # first global crop
        self.global_transfo1 = transforms.Compose([
            crop(global_size, global_crops_scale),
            flip_and_color_jitter,
            GaussianBlur(1.0, log=log),
            normalize,
        ])
        # second global crop
        self.global_transfo2 = transforms.Compose([
            crop(global_size, global_crops_scale),
            flip_and_color_jitter,
            GaussianBlur(0.1, log=log),
            Solarization(0.2, log=log),
            normalize,
        ])
        # transformation for the local small crops
        self.local_crops_number = local_crops_number
        self.local_transfo = transforms.Compose([
            crop(local_size, local_crops_scale),
            flip_and_color_jitter,
            GaussianBlur(p=0.5, log=log),
            normalize,
        ])

    def _view(self, transfo, image):
        out = transfo(image)
        if self.record:
            self.last_params.append(dict(self._log))
            self._log.clear()
        return out

    def __call__(self, image):
        self.last_params = []
        crops = []
        crops.append(self._view(self.global_transfo1, image))
        crops.append(self._view(self.global_transfo2, image))
        for _ in range(self.local_crops_number):
            crops.append(self._view(self.local_transfo, image))
        return crops
