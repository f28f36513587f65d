# Copyright (c) selfpatch_mm contributors. All rights reserved.
# CheckSegLabels (mmseg's TRANSFORMS) is not imported here: only the
# segmentation configs import .check_seg_labels, so mmseg stays unloaded.
from .dino_color_jitter import DINOColorJitter, adjust_hue
from .dino_multi_crop import DINOMultiCrop
from .robust_load_image_from_file import RobustLoadImageFromFile

__all__ = [
    'DINOColorJitter', 'DINOMultiCrop',
    'RobustLoadImageFromFile', 'adjust_hue'
]
