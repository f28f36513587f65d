# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .check_seg_labels import CheckSegLabels
from .dino_color_jitter import DINOColorJitter, adjust_hue
from .dino_multi_crop import DINOMultiCrop
from .robust_load_image_from_file import RobustLoadImageFromFile

__all__ = [
    'CheckSegLabels', 'DINOColorJitter', 'DINOMultiCrop',
    'RobustLoadImageFromFile', 'adjust_hue'
]
