# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .selfpatch_dense_vit import SelfPatchDenseViT
from .selfpatch_vit import SelfPatchViT, interpolate_pos_embed

__all__ = ['SelfPatchDenseViT', 'SelfPatchViT', 'interpolate_pos_embed']
