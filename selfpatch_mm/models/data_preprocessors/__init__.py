# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .batched_photometric import apply_photometric
from .multicrop_data_preprocessor import MultiCropDataPreprocessor

__all__ = ['MultiCropDataPreprocessor', 'apply_photometric']
