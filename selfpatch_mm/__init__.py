# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""selfpatch_mm: SelfPatch (CVPR 2022) on the OpenMMLab 2.x stack.

Importing the package registers its modules in mmpretrain's registries.
"""
from . import datasets, engine, models  # noqa: F401
from .version import __version__

__all__ = ['__version__']
