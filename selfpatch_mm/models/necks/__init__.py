# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .multi_block_avg_pool import MultiBlockAvgPool
from .selfpatch_neck import SelfPatchNeck

__all__ = ['MultiBlockAvgPool', 'SelfPatchNeck']
