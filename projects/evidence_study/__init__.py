# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The pretraining study of ``tools/analysis_tools/compare_pretraining.py``:
a generated image world, pretraining arms run through ``tools/train.py``,
frozen evaluations, and the report.

A project of this repository (as mmpretrain's ``projects/``), not part of
the installed package: it is imported from a checkout's root. It finds the
configs and tools it runs through the installed package
(:mod:`selfpatch_mm.apis.installed`).
"""
from .world import WorldSpec, generate_world, render_scene

__all__ = ['WorldSpec', 'generate_world', 'render_scene']
