# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .centered_loss import CenteredLoss
from .dino_loss import DINOLoss, cross_view_cross_entropy
from .patch_loss import PatchLoss, per_view_patch_cross_entropy

__all__ = [
    'CenteredLoss', 'DINOLoss', 'PatchLoss', 'cross_view_cross_entropy',
    'per_view_patch_cross_entropy'
]
