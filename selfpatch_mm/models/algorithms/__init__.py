# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .selfpatch import SelfPatch, group_views

__all__ = ['SelfPatch', 'group_views']
