# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The loading layer: every checkpoint this project reads comes through here.

* :mod:`.safe_load` reads a file (``weights_only=True``, ``.safetensors``,
  URLs, clear errors) and :mod:`.safe_globals` names what a file may hold;
* :mod:`.mmengine_loaders` routes mmengine's ``CheckpointLoader`` (resume,
  ``load_from``, ``load_checkpoint``, ``Pretrained``) through it;

Nothing here imports :mod:`selfpatch_mm.models`: models, evaluation and
tools call down into this layer, never the reverse.
"""
from .mmengine_loaders import register_mmengine_loaders
from .safe_globals import allowed_global_names, allowed_globals
from .safe_load import (ALLOW_UNSAFE_ENV, CheckpointLoadError,
                        UnsafeCheckpointError, download_checkpoint, is_url,
                        load_checkpoint_file, unsafe_pickle_allowed)

__all__ = [
    'ALLOW_UNSAFE_ENV', 'CheckpointLoadError', 'UnsafeCheckpointError',
    'allowed_global_names', 'allowed_globals', 'download_checkpoint',
    'is_url', 'load_checkpoint_file', 'register_mmengine_loaders',
    'unsafe_pickle_allowed'
]

register_mmengine_loaders()
