# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .frozen_selfpatch_vit import FrozenSelfPatchViT
from .selfpatch_dense_vit import SelfPatchDenseViT
from .selfpatch_vit import SelfPatchViT, interpolate_pos_embed

__all__ = [
    'FrozenSelfPatchViT', 'SelfPatchDenseViT', 'SelfPatchViT',
    'interpolate_pos_embed'
]
