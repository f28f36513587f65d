# Copyright (c) selfpatch_mm contributors. All rights reserved.
# mmseg decode heads; not imported by selfpatch_mm.models (which stays free
# of mmseg): segmentation configs import these modules in custom_imports.
from .linear_probe_head import LinearProbeHead

__all__ = ['LinearProbeHead']
