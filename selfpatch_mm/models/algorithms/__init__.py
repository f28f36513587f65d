# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .selfpatch import SelfPatch

__all__ = ['SelfPatch']
