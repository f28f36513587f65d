# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .class_attention import ClassAttentionBlock
from .compile import COMPILE_DEFAULTS, compile_counts, compile_module
from .finite_losses import NonFiniteLossError, check_finite_losses
from .health import (ONE_PROTOTYPE_PERPLEXITY, UNIFORM_ENTROPY_FRAC, entropy,
                     feature_std, head_figures)
from .init_cfg import is_pretrained_init
from .multicrop import group_views
from .positive_matching import match_positives, neighbour_index
from .precision import autocast_off

__all__ = [
    'COMPILE_DEFAULTS', 'ONE_PROTOTYPE_PERPLEXITY', 'UNIFORM_ENTROPY_FRAC',
    'ClassAttentionBlock', 'NonFiniteLossError', 'autocast_off',
    'check_finite_losses', 'compile_counts', 'compile_module', 'entropy',
    'feature_std', 'group_views', 'head_figures', 'is_pretrained_init',
    'match_positives', 'neighbour_index'
]
