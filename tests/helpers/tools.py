# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The one way the tests run a tool: :func:`run_tool` (a subprocess, as a
user runs it), :func:`start_tool` (the same, not waited for: signals,
several ranks) or :func:`load_tool` (imported, for an in-process
``main(argv)`` where no fresh process is needed)."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterable, List, Optional, Union

__all__ = [
    'REPO_ROOT', 'TOOLS', 'load_tool', 'run_command', 'run_tool',
    'start_tool', 'tool_cmd', 'tool_env'
]

#: The checkout under test (the tests run from a checkout).
REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / 'tools'

PathLike = Union[str, Path]


def tool_env(extra_paths: Iterable[PathLike] = (),
             threads: Optional[int] = 1,
             **overrides: str) -> Dict[str, str]:
    """Environment of a tool subprocess: this checkout (then
    ``extra_paths``, then the caller's ``PYTHONPATH``) importable and
    ``threads`` OpenMP threads (tests run several processes on few cores).

    Args:
        extra_paths (Iterable[PathLike]): More import roots (e.g. a test's
            folder of custom hooks).
        threads (int, optional): ``OMP_NUM_THREADS``; None keeps the
            caller's.
        **overrides: More variables to set.

    Returns:
        dict: A copy of ``os.environ`` with these set.
    """
    env = dict(os.environ)
    if threads is not None:
        env['OMP_NUM_THREADS'] = str(threads)
    paths = [str(REPO_ROOT), *map(str, extra_paths)]
    if env.get('PYTHONPATH'):
        paths.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    env.update(overrides)
    return env


def tool_cmd(tool: PathLike, *args: object) -> List[str]:
    """The command line of ``tool`` (a path relative to the checkout, e.g.
    ``'tools/train.py'``, or absolute): Python for ``.py``, bash for
    ``.sh``."""
    path = Path(tool)
    path = path if path.is_absolute() else REPO_ROOT / path
    runner = ['bash'] if path.suffix == '.sh' else [sys.executable]
    return [*runner, str(path), *map(str, args)]


def run_command(cmd: List[object],
                cwd: PathLike = REPO_ROOT,
                env: Optional[Dict[str, str]] = None,
                expect_ok: Optional[bool] = True,
                timeout: float = 300,
                merge_stderr: bool = True) -> subprocess.CompletedProcess:
    """Run ``cmd`` and return the finished process (text output).

    Args:
        cmd (list): The command; items are made strings.
        cwd (PathLike): Working directory; the checkout by default.
        env (dict, optional): Defaults to :func:`tool_env`.
        expect_ok (bool, optional): True: fail the test, with the output's
            tail, unless it exits with 0; False: unless it exits with
            another status; None: do not check.
        timeout (float): Seconds.
        merge_stderr (bool): stderr into ``stdout`` (the default), or kept
            apart in ``stderr``.

    Returns:
        subprocess.CompletedProcess: ``stdout`` (and ``stderr``), and
        ``returncode``.
    """
    proc = subprocess.run([str(c) for c in cmd],
                          cwd=str(cwd),
                          env=tool_env() if env is None else env,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT
                          if merge_stderr else subprocess.PIPE,
                          text=True,
                          timeout=timeout)
    if expect_ok is not None:
        output = proc.stdout[-6000:] + (proc.stderr or '')[-3000:]
        assert (proc.returncode == 0) == expect_ok, \
            f'{cmd} exited with {proc.returncode}:\n{output}'
    return proc


def run_tool(tool: PathLike, *args: object,
             **kwargs) -> subprocess.CompletedProcess:
    """Run ``tool`` with ``args`` as a user does: :func:`run_command` of
    :func:`tool_cmd` (same keyword arguments)."""
    return run_command(tool_cmd(tool, *args), **kwargs)


def start_tool(tool: PathLike,
               *args: object,
               cwd: PathLike = REPO_ROOT,
               env: Optional[Dict[str, str]] = None,
               **popen_kwargs) -> subprocess.Popen:
    """Start ``tool`` without waiting (a test that signals it or runs
    several ranks); stdout and stderr merged and piped unless
    ``popen_kwargs`` say otherwise."""
    popen_kwargs.setdefault('stdout', subprocess.PIPE)
    popen_kwargs.setdefault('stderr', subprocess.STDOUT)
    popen_kwargs.setdefault('text', True)
    return subprocess.Popen(tool_cmd(tool, *args),
                            cwd=str(cwd),
                            env=tool_env() if env is None else env,
                            **popen_kwargs)


def load_tool(tool: PathLike) -> ModuleType:
    """Import a script of ``tools/`` (not a package) for an in-process
    ``main(argv)``; ``tool`` as in :func:`tool_cmd`."""
    path = Path(tool)
    path = path if path.is_absolute() else REPO_ROOT / path
    name = 'tool_' + '_'.join(path.relative_to(REPO_ROOT).with_suffix(
        '').parts) if path.is_relative_to(REPO_ROOT) else path.stem
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
