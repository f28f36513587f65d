# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The package's installed configs and tools, and one way to run a tool.

``pip install`` puts ``configs/``, ``tools/`` and ``model-index.yml`` into
``selfpatch_mm/.mim`` (copies in a wheel, links in an editable install;
see ``setup.py``), where ``mim`` finds them. Code that needs a config or a
tool asks for it here, so it works the same from a checkout and from an
installed wheel, instead of guessing where a checkout might be.
"""
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from typing import Dict, Optional, Sequence

__all__ = ['ToolRun', 'mim_root', 'config_path', 'tool_path', 'run_tool']


def mim_root() -> str:
    """The ``.mim`` folder of the imported ``selfpatch_mm``.

    Raises:
        FileNotFoundError: When the package was imported without being
            installed (``.mim`` is made by ``pip install``).
    """
    root = str(resources.files('selfpatch_mm') / '.mim')
    if not osp.isdir(osp.join(root, 'configs')):
        raise FileNotFoundError(
            f'{root}/configs does not exist: selfpatch_mm was imported '
            'without being installed. Install it (`pip install -e .` in a '
            'checkout, or `pip install selfpatch_mm`), which writes .mim.')
    return root


def config_path(name: str) -> str:
    """Path of a packaged config.

    Args:
        name (str): Relative to ``configs/``, e.g.
            ``'selfpatch/selfpatch_vit-demo_1xb8-2e_in1k-48px.py'``.

    Raises:
        FileNotFoundError: Naming the path, when the config does not exist.
    """
    path = osp.join(mim_root(), 'configs', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'No packaged config {name!r} ({path}).')
    return path


def tool_path(name: str) -> str:
    """Path of a packaged tool, e.g. ``'train.py'`` or
    ``'analysis_tools/knn_eval.py'`` (relative to ``tools/``)."""
    path = osp.join(mim_root(), 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'No packaged tool {name!r} ({path}).')
    return path


@dataclass
class ToolRun:
    """What :func:`run_tool` saw.

    Attributes:
        returncode (int): The exit status.
        output (str): stdout and stderr together (the log's text when the
            output went to a file).
        wall_s (float): Wall-clock seconds of the process.
    """
    returncode: int
    output: str
    wall_s: float


def run_tool(tool: str,
             args: Sequence[str] = (),
             log: Optional[str] = None,
             env: Optional[Dict[str, str]] = None,
             threads: Optional[int] = None,
             cwd: Optional[str] = None,
             timeout: Optional[float] = None,
             check: bool = True) -> ToolRun:
    """Run a tool with this interpreter, as a user runs it.

    A fresh process, so each run has its own registries, loggers and
    signal handlers, and a crash or ``sys.exit`` stays inside it.

    Args:
        tool (str): A path to a script, or a name for :func:`tool_path`.
        args (Sequence[str]): Its arguments.
        log (str, optional): File for stdout and stderr; captured when
            None.
        env (dict, optional): The environment; this process's when None.
        threads (int, optional): ``OMP_NUM_THREADS`` for the tool. Tiny
            models run faster on one thread: two threads spin-waiting on
            shared cores made a step 5-20x slower (2-core machine).
        cwd (str, optional): Working directory.
        timeout (float, optional): Seconds before the tool is killed.
        check (bool): Raise when the tool fails. Defaults to True.

    Returns:
        ToolRun: Exit status, output and wall time.

    Raises:
        RuntimeError: With the output's tail, when ``check`` and the tool
            exits non-zero.
    """
    script = tool if osp.isfile(tool) else tool_path(tool)
    env = dict(os.environ if env is None else env)
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    cmd = [sys.executable, script, *map(str, args)]
    start = time.perf_counter()
    if log is None:
        proc = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        output = proc.stdout
    else:
        os.makedirs(osp.dirname(osp.abspath(log)), exist_ok=True)
        with open(log, 'w') as f:
            proc = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout,
                                  stdout=f, stderr=subprocess.STDOUT)
        with open(log) as f:
            output = f.read()
    run = ToolRun(proc.returncode, output, time.perf_counter() - start)
    if check and proc.returncode:
        where = f'; log {log}' if log else ''
        raise RuntimeError(f'{osp.basename(script)} failed '
                           f'({proc.returncode}){where}:\n{output[-3000:]}')
    return run
