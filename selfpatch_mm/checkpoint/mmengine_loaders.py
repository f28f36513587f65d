# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Route mmengine's checkpoint loading through :func:`load_checkpoint_file`.

mmengine's ``CheckpointLoader`` picks a loader by path prefix. Its stock
local loader calls ``torch.load`` without ``weights_only`` (so Runner
checkpoints fail on torch >= 2.6, and ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
makes it unpickle anything); its http(s) loader goes through
``torch.hub.load_state_dict_from_url``, whose default is
``weights_only=False``: a downloaded payload runs. Replacing the two makes
``Runner.resume``, ``load_from`` (a path or a URL),
``mmengine.runner.load_checkpoint`` (mmpretrain's ``init_model`` /
``FeatureExtractor``) and ``init_cfg=dict(type='Pretrained')`` safe.

Importing :mod:`selfpatch_mm.checkpoint` registers them (once), as importing
the package registers its models.
"""
from typing import Any

from .safe_load import load_checkpoint_file

__all__ = ['register_mmengine_loaders', 'load_from_local', 'load_from_http']

_REGISTERED = False
LOCAL_PREFIX = '(?:)'
HTTP_PREFIX = 'https?://'


# mmengine logs the loader as ``__name__[10:]``: these names log "local" and
# "http", as its own loaders do.
def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's local scheme, read by :func:`load_checkpoint_file`."""
    return load_checkpoint_file(filename, map_location)


def load_from_http(filename: str, map_location: Any = None) -> Any:
    """mmengine's http(s) scheme, read by :func:`load_checkpoint_file`."""
    return load_checkpoint_file(filename, map_location)


def register_mmengine_loaders() -> None:
    """Install :func:`load_from_local` and :func:`load_from_http` as
    mmengine's loaders for plain paths and http(s) URLs. Calling it again
    does nothing."""
    global _REGISTERED
    if _REGISTERED:
        return
    from mmengine.runner.checkpoint import CheckpointLoader

    # New prefixes rather than forcing mmengine's own away: its loader
    # table is tried longest (and reverse-alphabetically) first, and the
    # prefixes are regular expressions. ``https?://`` therefore wins over
    # mmengine's ``http://`` / ``https://``, and ``(?:)`` (matches any
    # path) over its ``''`` fallback, while every other scheme
    # (``s3://``, ``open-mmlab://``...) is still tried before it.
    CheckpointLoader.register_scheme(
        prefixes=LOCAL_PREFIX, loader=load_from_local)
    CheckpointLoader.register_scheme(
        prefixes=HTTP_PREFIX, loader=load_from_http)
    _REGISTERED = True
