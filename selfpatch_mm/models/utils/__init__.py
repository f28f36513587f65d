# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .class_attention import ClassAttentionBlock
from .multicrop import group_views
from .positive_matching import match_positives, neighbour_index

__all__ = [
    'ClassAttentionBlock', 'group_views', 'match_positives', 'neighbour_index'
]
