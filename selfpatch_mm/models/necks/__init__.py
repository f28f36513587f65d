# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .selfpatch_neck import SelfPatchNeck

__all__ = ['SelfPatchNeck']
