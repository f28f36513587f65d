# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The pretraining study of ``tools/analysis_tools/compare_pretraining.py``:
a generated image world, pretraining arms run through ``tools/train.py``,
frozen evaluations, and the report."""
from .world import WorldSpec, generate_world, render_scene

__all__ = ['WorldSpec', 'generate_world', 'render_scene']
