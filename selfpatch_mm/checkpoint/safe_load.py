# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Read a checkpoint file as data, never as code.

:func:`load_checkpoint_file` is the one function through which every
checkpoint of this project is read: resume, ``load_from``, ``init_cfg``,
the converters, the analysis tools, ``tools/test.py`` and URLs. It
unpickles with ``torch.load(weights_only=True)`` and the globals of
:mod:`.safe_globals`, reads ``.safetensors`` files, and turns empty, cut
short and blocked files into errors that name the file.

Arbitrary pickles load only after an explicit opt-in: the environment
variable ``SELFPATCH_ALLOW_UNSAFE_PICKLE=1`` or the tools'
``--allow-unsafe-pickle`` flag (which sets it). Even then the safe load is
tried first, and a file that needs the unsafe path is named in a warning.
"""
import os
import os.path as osp
import pickle
import re
import warnings
import zipfile
from typing import Any, List, Optional
from urllib.parse import urlparse

import torch

from .safe_globals import allowed_global_names, allowed_globals

__all__ = [
    'ALLOW_UNSAFE_ENV', 'CheckpointLoadError', 'UnsafeCheckpointError',
    'download_checkpoint', 'is_url', 'load_checkpoint_file',
    'unsafe_pickle_allowed'
]

ALLOW_UNSAFE_ENV = 'SELFPATCH_ALLOW_UNSAFE_PICKLE'
_URL_SCHEMES = ('http://', 'https://')


class CheckpointLoadError(RuntimeError):
    """A checkpoint file cannot be read: empty, cut short, corrupt, or not a
    checkpoint. The message names the file and what was found."""


class UnsafeCheckpointError(CheckpointLoadError):
    """A checkpoint's pickle names a global that is not allowed (it could
    run code). The message names the file, the globals and the opt-in."""


def is_url(filename: str) -> bool:
    """Whether ``filename`` is an http(s) URL."""
    return isinstance(filename, str) and filename.startswith(_URL_SCHEMES)


def unsafe_pickle_allowed(allow_unsafe: Optional[bool] = None) -> bool:
    """Whether arbitrary pickles may be loaded.

    Args:
        allow_unsafe (bool, optional): An explicit choice; None reads the
            ``SELFPATCH_ALLOW_UNSAFE_PICKLE`` environment variable.
    """
    if allow_unsafe is not None:
        return bool(allow_unsafe)
    return os.environ.get(ALLOW_UNSAFE_ENV,
                          '').strip().lower() in ('1', 'true', 'yes', 'on')


def download_checkpoint(url: str, model_dir: Optional[str] = None) -> str:
    """Download ``url`` into torch's hub cache (once) and return the path.

    As mmengine's ``load_from_http``: in a distributed run rank 0 downloads
    first and the other ranks then read its cached copy. Only the bytes are
    fetched here; reading them is :func:`load_checkpoint_file`'s job.

    Args:
        url (str): An http(s) URL.
        model_dir (str, optional): Cache folder; defaults to
            ``<torch hub dir>/checkpoints`` (set ``TORCH_HOME`` to move it).

    Returns:
        str: The local file.
    """
    from mmengine.dist import get_dist_info
    from torch.hub import download_url_to_file, get_dir

    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    name = osp.basename(urlparse(url).path) or 'checkpoint.pth'
    cached = osp.join(model_dir, name)

    def fetch() -> None:
        if not osp.isfile(cached):
            os.makedirs(model_dir, exist_ok=True)
            # writes a temporary file and renames it: no half files cached
            download_url_to_file(url, cached, progress=False)

    rank, world_size = get_dist_info()
    if rank == 0:
        fetch()
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            fetch()
    return cached


def load_checkpoint_file(filename: str,
                         map_location: Any = 'cpu',
                         allow_unsafe: Optional[bool] = None) -> Any:
    """Load a checkpoint (``.pth``-style pickle or ``.safetensors``).

    Args:
        filename (str): Local path (``~`` is expanded) or http(s) URL.
        map_location (Any): As in :func:`torch.load`. Defaults to ``'cpu'``.
        allow_unsafe (bool, optional): Load pickles that name other globals
            (trusted files only: they can run code). None, the default,
            follows ``SELFPATCH_ALLOW_UNSAFE_PICKLE``.

    Returns:
        Any: The checkpoint, usually a dict. A ``.safetensors`` file gives
        ``{'state_dict': tensors, 'meta': its metadata}``.

    Raises:
        FileNotFoundError: If a local ``filename`` does not exist.
        UnsafeCheckpointError: If the pickle names a global that is not
            allowed and unsafe loading is not allowed.
        CheckpointLoadError: If the file is empty, cut short or corrupt.
    """
    if is_url(filename):
        path = download_checkpoint(filename)
        shown = f'{filename} (cached at {path})'
    else:
        path = osp.expanduser(str(filename))
        if not osp.isfile(path):
            # mmengine's own message, which its Runner expects
            raise FileNotFoundError(f'{filename} can not be found.')
        shown = str(filename)
    size = osp.getsize(path)
    if size == 0:
        raise CheckpointLoadError(
            f'{shown} is empty (0 bytes): it was cut short while being '
            'written or downloaded. Use another checkpoint or write it '
            'again.')
    if path.endswith('.safetensors'):
        return _load_safetensors(path, shown, map_location)
    if not _looks_like_torch_file(path):
        raise CheckpointLoadError(_unreadable(path, shown, None))
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(
                path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if not _names_a_global(str(err)):  # a damaged pickle stream
            raise CheckpointLoadError(_unreadable(path, shown, err)) from None
        blocked = _blocked_globals(path, err)
    except Exception as err:  # torch raises many types for a damaged file
        raise CheckpointLoadError(_unreadable(path, shown, err)) from None
    if not unsafe_pickle_allowed(allow_unsafe):
        raise UnsafeCheckpointError(
            f'{shown} was not loaded: its pickle names '
            f'{", ".join(blocked)}, which is not allowed in a checkpoint '
            'because unpickling it can run arbitrary code (allowed: '
            'tensors, containers, numbers, strings, numpy arrays, scalars '
            'and dtypes, mmengine\'s HistoryBuffer, argparse.Namespace). '
            'If you trust '
            'this file (you or someone you trust wrote it), set '
            f'{ALLOW_UNSAFE_ENV}=1 or pass --allow-unsafe-pickle to the '
            'tool; better, convert it once and share the '
            '.safetensors weights (tools/model_converters/'
            'extract_backbone.py).') from None
    msg = (f'UNSAFE PICKLE: loading {shown} with weights_only=False, as '
           f'{ALLOW_UNSAFE_ENV} / --allow-unsafe-pickle allows. It names '
           f'{", ".join(blocked)}; unpickling it can run arbitrary code. '
           'Do this only for files you trust.')
    warnings.warn(msg, UserWarning, stacklevel=2)
    _log_warning(msg)
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:
        raise CheckpointLoadError(_unreadable(path, shown, err)) from None


def _log_warning(msg: str) -> None:
    """Also put ``msg`` in the run's log (``warnings`` reach stderr only)."""
    import logging

    from mmengine.logging import print_log
    print_log(msg, logger='current', level=logging.WARNING)


def _looks_like_torch_file(path: str) -> bool:
    """A complete zip archive (torch >= 1.6) or a pickle stream (legacy
    ``torch.save`` format); anything else is not worth unpickling."""
    with open(path, 'rb') as f:
        head = f.read(2)
    return zipfile.is_zipfile(path) or head[:1] == b'\x80'


def _names_a_global(message: str) -> bool:
    """Whether a ``weights_only`` error is about a global that is not
    allowed (rather than about a damaged pickle stream)."""
    return 'Weights only load failed' in message and any(
        s in message for s in ('Unsupported global', 'allowlisted',
                               'allowed global', 'GLOBAL '))


def _blocked_globals(path: str, err: Exception) -> List[str]:
    """The globals of ``path`` that are not allowed (the first one from the
    error message when the file cannot be scanned)."""
    allowed = set(allowed_global_names())
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        names = [n for n in names if n not in allowed]
    except Exception:  # legacy (non-zip) files cannot be scanned
        names = []
    if not names:
        found = re.search(r'GLOBAL (\S+)|got <class \'([^\']+)\'>', str(err))
        names = [next(g for g in found.groups() if g)] if found else \
            ['an unknown global']
    return names


def _unreadable(path: str, shown: str, err: Optional[BaseException]) -> str:
    """Say why ``path`` could not be read, without torch's raw traceback."""
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(8)
    first = str(err).strip().splitlines() if err is not None else []
    detail = f' [{type(err).__name__}: {first[0][:120]}]' if first else ''
    if zipfile.is_zipfile(path):
        what = 'a zip archive that torch cannot read'
    elif head.startswith(b'PK'):
        what = ('the start of a zip archive without its end (central '
                'directory): the file was cut short, e.g. by a kill or a '
                'full disk during saving, or an interrupted download')
    elif head[:1] == b'\x80':
        what = 'a legacy (non-zip) torch file that is cut short or damaged'
    else:
        what = (f'not a torch checkpoint (it starts with {head!r}; an HTML '
                'page or a text file?)')
    return (f'{shown} is not a readable checkpoint ({size} bytes): found '
            f'{what}{detail}. Use another checkpoint, or write or '
            'download this one again.')


def _load_safetensors(path: str, shown: str, map_location: Any) -> dict:
    try:
        from safetensors import safe_open
    except ImportError as err:
        raise ImportError(
            f'Reading {shown} needs the safetensors package: pip install '
            'safetensors (tools/install.sh installs it).') from err
    device = map_location if isinstance(map_location, str) else 'cpu'
    try:
        with safe_open(path, framework='pt', device=device) as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointLoadError(
            f'{shown} is not a readable .safetensors file '
            f'({osp.getsize(path)} bytes): {type(err).__name__}: {err}. '
            'Use another file, or write or download it again.') from None
    return {'state_dict': state, 'meta': meta}
