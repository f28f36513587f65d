# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .dino_head import DINOHead

__all__ = ['DINOHead']
