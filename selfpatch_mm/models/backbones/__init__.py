# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .selfpatch_vit import SelfPatchViT, interpolate_pos_embed

__all__ = ['SelfPatchViT', 'interpolate_pos_embed']
