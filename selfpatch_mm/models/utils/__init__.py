# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .class_attention import ClassAttentionBlock
from .positive_matching import match_positives, neighbour_index

__all__ = ['ClassAttentionBlock', 'match_positives', 'neighbour_index']
