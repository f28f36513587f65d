# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Leaf utilities that import nothing else of selfpatch_mm: the random
number generator state a checkpoint saves and restores.

The tools' assembly code (config loading, building the Runner, the command
line, distributed set-up) lives in :mod:`selfpatch_mm.apis`.
"""
from .rng_state import get_rng_state, set_rng_state

__all__ = ['get_rng_state', 'set_rng_state']
