# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The loading layer: every checkpoint this project reads comes through here.

* :mod:`.safe_load` reads a file (``weights_only=True``, ``.safetensors``,
  URLs, clear errors) and :mod:`.safe_globals` names what a file may hold;
* :mod:`.mmengine_loaders` routes mmengine's ``CheckpointLoader`` (resume,
  ``load_from``, ``load_checkpoint``, ``Pretrained``) through it;
* :mod:`.layouts` detects a file's layout (ours, the authors' full
  checkpoint, a DINO-style ViT) and takes its ViT weights, with the key
  mapping of :mod:`.official` and the helpers of :mod:`.keys`;
* :mod:`.pos_embed` adapts position embeddings to a model's grid;
* :mod:`.state_match` checks that weights fit a model and fails with a
  summary when most do not;
* :mod:`.checkpoint_files` writes Runner checkpoints crash-consistently
  (atomic renames, fsync) and chooses the file a resume starts from;
* :mod:`.weights_file` writes converted weights (``.safetensors`` or
  ``.pth``) for the converters.

Nothing here imports :mod:`selfpatch_mm.models`: models, evaluation and
tools call down into this layer, never the reverse.
"""
from .checkpoint_files import find_resumable_checkpoint
from .keys import (WEIGHT_KEYS, get_state_dict, is_vit_key, strip_prefix,
                   summarise_prefixes)
from .layouts import (convert_official_checkpoint, detect_layout,
                      extract_vit_state_dict)
from .mmengine_loaders import register_mmengine_loaders
from .official import convert_official_full, convert_official_vit
from .pos_embed import drop_cls_pos_embed, fit_pos_embed, interpolate_pos_embed
from .safe_globals import allowed_global_names, allowed_globals
from .safe_load import (ALLOW_UNSAFE_ENV, CheckpointLoadError,
                        UnsafeCheckpointError, download_checkpoint, is_url,
                        load_checkpoint_file, unsafe_pickle_allowed)
from .state_match import (CheckpointMismatchError, LoadReport,
                          check_load_report, match_state_dict,
                          verify_load_from)
from .weights_file import (check_output_path, read_conversion_source,
                           save_weights_file)

__all__ = [
    'WEIGHT_KEYS', 'find_resumable_checkpoint', 'ALLOW_UNSAFE_ENV',
    'CheckpointLoadError', 'CheckpointMismatchError', 'LoadReport',
    'UnsafeCheckpointError', 'allowed_global_names', 'allowed_globals',
    'check_load_report', 'check_output_path', 'convert_official_checkpoint',
    'convert_official_full', 'convert_official_vit', 'detect_layout',
    'download_checkpoint', 'drop_cls_pos_embed', 'extract_vit_state_dict',
    'fit_pos_embed', 'get_state_dict', 'interpolate_pos_embed', 'is_url',
    'is_vit_key', 'load_checkpoint_file', 'match_state_dict',
    'read_conversion_source', 'register_mmengine_loaders', 'save_weights_file',
    'strip_prefix', 'summarise_prefixes', 'unsafe_pickle_allowed',
    'verify_load_from'
]

register_mmengine_loaders()
