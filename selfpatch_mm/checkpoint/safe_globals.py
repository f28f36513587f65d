# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The exact set of pickle globals that genuine checkpoint files carry.

``torch.load(..., weights_only=True)`` rebuilds tensors, containers and
primitive values only. Everything else a file names must be allowed
explicitly. Measured on real files (``torch.serialization.
get_unsafe_globals_in_checkpoint``):

* this project's Runner checkpoints (``tools/train.py`` on the demo config):
  ``message_hub`` holds :class:`mmengine.logging.HistoryBuffer` objects
  (numpy arrays inside), its class-level table of statistics methods
  (pickled as ``builtins.getattr(HistoryBuffer, 'min')``), and numpy scalars
  (``eta``) in ``runtime_info``. Numpy arrays need ``ndarray``,
  ``_reconstruct``, ``dtype`` and the concrete dtype classes of
  ``numpy.dtypes`` (``Float64DType``...), which their ``BUILD`` step names;
* mmpretrain / mmdet / mmseg checkpoints are written by the same mmengine
  Runner (or by mmcv 1.x with plain ``meta`` values, numpy scalars at most),
  so they need nothing more;
* the authors' released SelfPatch files (``main_selfpatch.py``) carry the
  run's ``argparse.Namespace`` under ``args``.

Files written by numpy 1.x name ``numpy.core.multiarray.*`` where numpy 2
writes ``numpy._core.multiarray.*``: both names map to the same functions.
"""
import argparse
from typing import Any, Callable, List, Tuple, Union

import numpy as np

__all__ = ['allowed_globals', 'allowed_global_names']

SafeGlobal = Union[Callable, Tuple[Callable, str]]

# Dtype classes whose instances genuine arrays and scalars use. Object, void
# and datetime dtypes are left out: no genuine file here needs them.
_DTYPE_NAMES = ('Bool', 'Int8', 'UInt8', 'Int16', 'UInt16', 'Int32',
                'UInt32', 'Int64', 'UInt64', 'LongLong', 'ULongLong',
                'Float16', 'Float32', 'Float64', 'LongDouble', 'Complex64',
                'Complex128', 'CLongDouble', 'Bytes', 'Str')


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to the public methods of ``HistoryBuffer``.

    mmengine's ``HistoryBuffer._statistics_methods`` maps names to its own
    methods; pickle stores each as ``getattr(HistoryBuffer, 'min')``.
    Allowing the real ``getattr`` would let a file read any attribute of
    any allowed object, so only this one use is accepted.
    """
    import pickle

    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and not name.startswith('_') and \
            callable(getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    # Worded as torch's own message, so the loader reports a blocked global
    raise pickle.UnpicklingError(
        f'Unsupported global: GLOBAL builtins.getattr on {obj!r}, {name!r} '
        '(only the public methods of mmengine.logging.HistoryBuffer are '
        'allowed)')


def _multiarray():
    """numpy's ``multiarray`` module (``numpy._core`` in numpy 2)."""
    core = getattr(np, '_core', None) or np.core
    return core.multiarray


def allowed_globals() -> List[SafeGlobal]:
    """The globals (or ``(object, pickled name)`` pairs) to pass to
    :func:`torch.serialization.safe_globals`.

    Returns:
        list: Callables and ``(callable, name)`` pairs; a pair makes the
        name, as written in the file, resolve to the callable.
    """
    from mmengine.logging import HistoryBuffer
    ma = _multiarray()
    out: List[SafeGlobal] = [
        argparse.Namespace,  # the authors' files: ckpt['args']
        HistoryBuffer,  # Runner checkpoints: message_hub.log_scalars
        (_history_buffer_getattr, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
    ]
    for mod in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        out.append((ma._reconstruct, f'{mod}._reconstruct'))
        out.append((ma.scalar, f'{mod}.scalar'))
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    if dtypes is not None:
        for name in _DTYPE_NAMES:
            cls = getattr(dtypes, f'{name}DType', None)
            if cls is not None:
                out.append(cls)
    return out


def allowed_global_names() -> List[str]:
    """Dotted names of :func:`allowed_globals`, for messages and tests."""
    names = []
    for item in allowed_globals():
        if isinstance(item, tuple):
            names.append(item[1])
        else:
            names.append(f'{item.__module__}.{item.__qualname__}')
    return sorted(set(names))
