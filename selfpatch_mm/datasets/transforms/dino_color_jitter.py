# Copyright (c) selfpatch_mm contributors. All rights reserved.
import warnings
from typing import Dict

import mmcv
import numpy as np
from mmpretrain.datasets.transforms import ColorJitter
from mmpretrain.registry import TRANSFORMS
from PIL import Image

__all__ = ['DINOColorJitter', 'adjust_hue']


def adjust_hue(img: np.ndarray, hue_factor: float) -> np.ndarray:
    """Shift the hue of a BGR uint8 image (torchvision's algorithm).

    ``mmcv.adjust_hue`` computes ``np.uint8(hue_factor * 255)``, which
    raises ``OverflowError`` for negative factors under numpy >= 2; the shift
    is taken modulo 256 here, which is what the uint8 cast did before.
    """
    pil = Image.fromarray(np.ascontiguousarray(img[..., ::-1]))
    h, s, v = pil.convert('HSV').split()
    np_h = np.array(h, dtype=np.uint8)
    np_h += np.uint8(int(hue_factor * 255) % 256)  # wraps around the circle
    hsv = Image.merge('HSV', (Image.fromarray(np_h, 'L'), s, v))
    return np.array(hsv.convert('RGB'), dtype=img.dtype)[..., ::-1]


@TRANSFORMS.register_module()
class DINOColorJitter(ColorJitter):
    """mmpretrain's ``ColorJitter`` (random order of brightness, contrast,
    saturation and hue, as torchvision) with a hue step that works on
    numpy 2 (see :func:`adjust_hue`)."""

    def transform(self, results: Dict) -> Dict:
        img = results['img']
        order, brightness, contrast, saturation, hue = self._rand_params()
        for index in order:
            if index == 0 and brightness is not None:
                img = mmcv.adjust_brightness(img, brightness, self.backend)
            elif index == 1 and contrast is not None:
                img = mmcv.adjust_contrast(img, contrast, self.backend)
            elif index == 2 and saturation is not None:
                with warnings.catch_warnings():
                    # mmcv warns on every pillow call that only `alpha` is
                    # used, which is all we pass.
                    warnings.simplefilter('ignore', UserWarning)
                    img = mmcv.adjust_color(
                        img, saturation, backend=self.backend)
            elif index == 3 and hue is not None:
                img = adjust_hue(img, hue)
        results['img'] = img
        return results
