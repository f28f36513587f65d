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

    # ``force=True`` is required: mmengine registers these prefixes itself
    # at import and ``CheckpointLoader.register_scheme`` raises a KeyError
    # for a registered prefix unless forced; it has no other public way to
    # replace a loader. Only these two prefixes are replaced.
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=load_from_http, force=True)
    _REGISTERED = True
