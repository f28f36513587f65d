"""Crash-consistent checkpoint files: atomic writes, checks, resume choice.

A checkpoint or ``last_checkpoint`` file is either the complete old version
or the complete new one, whatever kills the process (SIGKILL, a full disk, a
power cut): data goes to a temporary file in the same directory, is flushed
and fsynced, and only then renamed over the final name (``os.replace`` is
atomic within one file system); the directory is fsynced so the rename
itself survives a crash.

Resuming reads ``last_checkpoint`` (a path relative to the work dir, so a
moved work dir resumes from itself) and falls back to the newest readable
checkpoint when that one is cut short, empty or not a checkpoint at all.
"""
import errno
import logging
import os
import os.path as osp
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

__all__ = [
    'TMP_MARK', 'fsync_dir', 'fsync_file', 'atomic_write_text',
    'is_tmp_checkpoint', 'remove_tmp_checkpoints', 'nonfinite_keys',
    'refuse_nonfinite', 'write_error', 'relative_to', 'check_checkpoint_file',
    'read_last_checkpoint', 'checkpoint_candidates',
    'find_resumable_checkpoint'
]

# Temporary files are hidden (leading dot) and carry this mark, so no glob
# for ``epoch_*.pth`` ever picks a half-written one.
TMP_MARK = '.tmp-'


def fsync_file(path: str) -> None:
    """Force the data of ``path`` to disk (fsync works per file, so a new
    descriptor flushes what another one wrote)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """Make a rename or unlink in directory ``path`` durable.

    Some file systems (and non-POSIX platforms) cannot fsync a directory;
    the rename is still atomic there, only its durability is weaker.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def tmp_path_for(path: str) -> str:
    """The temporary name ``path`` is written under first (same folder)."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}{TMP_MARK}{os.getpid()}')


def is_tmp_checkpoint(name: str) -> bool:
    """Whether a file name is one of :func:`tmp_path_for`'s names."""
    return name.startswith('.') and TMP_MARK in name


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file, fsync, rename).

    Raises:
        OSError: If writing fails; ``path`` then keeps its old content and
            the temporary file is removed.
    """
    tmp = tmp_path_for(path)
    try:
        with open(tmp, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    fsync_dir(osp.dirname(osp.abspath(path)))


def remove_tmp_checkpoints(folder: str) -> List[str]:
    """Delete temporary files a killed run left in ``folder``.

    Returns:
        list[str]: The removed paths.
    """
    removed = []
    if not osp.isdir(folder):
        return removed
    for name in os.listdir(folder):
        if is_tmp_checkpoint(name):
            path = osp.join(folder, name)
            try:
                os.remove(path)
                removed.append(path)
            except OSError:
                pass  # another process's file, or already gone
    return removed


def _all_finite(v: torch.Tensor) -> bool:
    # NaN and Inf carry into a sum, so a finite sum means finite elements;
    # it reads the tensor once without a mask as large as it (16x faster
    # than isfinite().all() on a CPU). Only a sum that is not finite, which
    # finite values can also give by overflowing, needs the element check.
    return bool(torch.isfinite(v.sum())) or bool(torch.isfinite(v).all())


def nonfinite_keys(state_dict: Dict[str, Any]) -> List[str]:
    """Keys of floating-point tensors holding NaN or Inf."""
    return [
        k for k, v in state_dict.items()
        if torch.is_tensor(v) and v.is_floating_point() and not _all_finite(v)
    ]


def refuse_nonfinite(state_dict: Dict[str, Any], epoch: Optional[int],
                     it: Optional[int]) -> None:
    """Raise a ``RuntimeError`` naming NaN/Inf tensors, if any."""
    bad = nonfinite_keys(state_dict)
    if bad:
        raise RuntimeError(
            f'Refusing to save a checkpoint at epoch {epoch}, iter '
            f'{it}: {len(bad)} model tensors hold NaN or Inf (e.g. '
            f'{", ".join(bad[:3])}). The last checkpoint stays the '
            'newest; resume from it, with a lower learning rate or '
            'stronger gradient clipping.')


def write_error(e: OSError, final: str, previous: Optional[str]) -> OSError:
    """The error a failed checkpoint write is reported with."""
    cause = ('the disk is full' if e.errno in (errno.ENOSPC, errno.EDQUOT) else
             f'{type(e).__name__}: {e}')
    kept = (f'the previous checkpoint {previous} is intact'
            if previous else 'no earlier checkpoint was written')
    return OSError(
        e.errno, f'Could not write checkpoint {final}: {cause} '
        f'({os.strerror(e.errno) if e.errno else e}). The partial file '
        f'was removed and {kept}; free space and rerun with --resume.')


def relative_to(path: str, work_dir: str) -> str:
    """``path`` relative to ``work_dir`` when it lies inside it."""
    path, work_dir = osp.abspath(path), osp.abspath(work_dir)
    if osp.commonpath([path, work_dir]) == work_dir:
        return osp.relpath(path, work_dir)
    return path


def _default_load(path: str) -> Any:
    # The project's one loader (weights_only, safe globals): the same reader
    # that mmengine's local scheme uses after ``build_runner``.
    from .safe_load import load_checkpoint_file
    return load_checkpoint_file(path, map_location='cpu')


def check_checkpoint_file(path: str,
                          load: Optional[Callable[[str], Any]] = None,
                          require_finite: bool = True) -> Optional[str]:
    """Why ``path`` is not a usable Runner checkpoint, or None if it is.

    Args:
        path (str): A local file.
        load (callable, optional): Reads a file; by default
            :func:`selfpatch_mm.checkpoint.load_checkpoint_file` (CPU).
        require_finite (bool): Also require a finite model state.

    Returns:
        str or None: A short reason (``'0 bytes'``, the loader's error, a
        missing key, non-finite tensors), or None for a good file.
    """
    if not osp.isfile(path):
        return 'no such file'
    if osp.getsize(path) == 0:
        return '0 bytes'
    try:
        ckpt = (load or _default_load)(path)
    except Exception as e:  # any reader error means: cannot resume from it
        msg = str(e).strip().splitlines()
        return f'unreadable ({type(e).__name__}: {msg[0] if msg else ""})'
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt or \
            'meta' not in ckpt:
        found = sorted(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt)
        return f'not a Runner checkpoint (found {found})'
    if require_finite:
        bad = nonfinite_keys(ckpt['state_dict'])
        if bad:
            return f'non-finite tensors ({", ".join(bad[:3])})'
    return None


def read_last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint that ``work_dir/last_checkpoint`` names, as a path.

    A relative entry is taken relative to ``work_dir``. An absolute entry
    (written by mmengine's own hook) is looked up by its file name in
    ``work_dir`` first, so a moved or copied work dir resumes from itself;
    only checkpoints saved elsewhere (``out_dir``) are read from the path.

    Returns:
        str or None: The path, or None without a (non-empty) entry.
    """
    save_file = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(save_file):
        return None
    with open(save_file) as f:
        entry = f.read().strip()
    if not entry:
        return None
    if not osp.isabs(entry):
        return osp.join(work_dir, entry)
    # An absolute entry (mmengine's own hook) in a moved or copied work dir
    # must not send the run back to the old location.
    local = osp.join(work_dir, osp.basename(entry))
    return local if osp.exists(local) else entry


def _template_regex(filename_tmpl: str) -> 're.Pattern':
    head, _, tail = filename_tmpl.partition('{}')
    return re.compile(f'^{re.escape(head)}(\\d+){re.escape(tail)}$')


#: The rolling checkpoint ``SafeCheckpointHook(save_latest=True)`` and
#: ``PreemptionHook`` write; its step is not in its name.
LATEST_NAME = 'latest.pth'


def _steps(folders: List[str],
           filename_tmpls: Tuple[str, ...]) -> Dict[str, Tuple[int, float]]:
    """``{path: (step, mtime)}`` of the numbered checkpoint files of
    ``folders``."""
    patterns = [_template_regex(t) for t in filename_tmpls]
    found = {}
    for folder in folders:
        if not osp.isdir(folder):
            continue
        for name in os.listdir(folder):
            for pattern in patterns:
                match = pattern.match(name)
                if match:
                    path = osp.join(folder, name)
                    found[osp.abspath(path)] = (int(match.group(1)),
                                                osp.getmtime(path))
    return found


def _with_latest(numbered: List[str], found: Dict[str, Tuple[int, float]],
                 folders: List[str]) -> List[str]:
    """``numbered`` (newest first) with each folder's ``latest.pth`` put
    before the first numbered file written earlier than it."""
    out = list(numbered)
    for folder in folders:
        path = osp.abspath(osp.join(folder, LATEST_NAME))
        if not osp.isfile(path) or path in out:
            continue
        mtime = osp.getmtime(path)
        at = next((i for i, p in enumerate(out) if found[p][1] < mtime),
                  len(out))
        out.insert(at, path)
    return out


def checkpoint_candidates(
    folders: List[str],
    filename_tmpls: Tuple[str, ...] = ('epoch_{}.pth', 'iter_{}.pth')
) -> List[str]:
    """Checkpoint files of ``folders``, newest first.

    Newest means the highest step in the name (``epoch_12`` after
    ``epoch_3``), then the latest modification time; ``latest.pth`` goes
    before the numbered files written earlier than it.
    """
    found = _steps(folders, filename_tmpls)
    return _with_latest(
        sorted(found, key=lambda p: found[p], reverse=True), found, folders)


def find_resumable_checkpoint(
        work_dir: str,
        extra_dirs: Optional[List[str]] = None,
        filename_tmpls: Tuple[str, ...] = ('epoch_{}.pth', 'iter_{}.pth'),
        logger: Optional[logging.Logger] = None,
        load: Optional[Callable[[str], Any]] = None) -> Optional[str]:
    """The checkpoint ``--resume`` (auto) should continue from.

    The one ``last_checkpoint`` names comes first, then the others in the
    work dir (and ``extra_dirs``), newest first. Only a file with a higher
    step that was also written later than the named one goes before it: a
    run killed between renaming a new checkpoint into place and rewriting
    ``last_checkpoint`` leaves such a file, while a higher-numbered file of
    an earlier experiment in the same folder is older and stays behind. The
    first good candidate (see :func:`check_checkpoint_file`) is returned;
    each skipped one is warned about by name.

    Args:
        work_dir (str): The run's work dir.
        extra_dirs (list[str], optional): Other folders checkpoints are
            saved to (a checkpoint hook's ``out_dir``).
        filename_tmpls (tuple[str]): Checkpoint name templates.
        logger (logging.Logger, optional): Where warnings go.
        load (callable, optional): See :func:`check_checkpoint_file`.

    Returns:
        str or None: The checkpoint, or None when there is no good one (the
        run then starts from scratch, with a warning if files were there).
    """

    def warn(msg: str) -> None:
        if logger is not None:
            logger.warning(msg)

    named = read_last_checkpoint(work_dir)
    if named is None and osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        warn(f'{osp.join(work_dir, "last_checkpoint")} is empty; looking '
             'for the newest readable checkpoint instead.')
    folders = [work_dir] + list(extra_dirs or [])
    found = _steps(folders, filename_tmpls)
    candidates = _with_latest(
        sorted(found, key=lambda p: found[p], reverse=True), found, folders)
    if named is not None:
        named = osp.abspath(named)
        mine = found.get(named)
        if mine is None and osp.isfile(named):  # latest.pth: no step
            mine = (-1, osp.getmtime(named))

        def newer_than_named(c: str) -> bool:
            # a latest.pth renamed into place after the named file
            if c not in found:
                return mine is not None and osp.getmtime(c) > mine[1]
            return mine is not None and found[c][0] > mine[0] and \
                found[c][1] > mine[1]

        newer = [c for c in candidates if c != named and newer_than_named(c)]
        candidates = newer + [named] + [
            c for c in candidates if c != named and c not in newer
        ]
    bad = []
    for path in candidates:
        reason = check_checkpoint_file(path, load=load)
        if reason is None:
            if bad:
                warn(f'Resuming from {path}, the newest readable checkpoint.')
            return path
        bad.append(path)
        warn(f'Cannot resume from {path}: {reason}. Trying the next newest '
             'checkpoint.')
    if bad:
        warn(f'No readable checkpoint in {folders}; training starts from '
             'scratch.')
    return None
