# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Helpers the tests share (as ``mmdet.testing``): running the tools as a
user does, in a subprocess with this checkout importable."""
import os
import subprocess
from pathlib import Path
from typing import Dict, Iterable, List, Optional

__all__ = [
    'REPO_ROOT', 'DEMO_VIT_ARCH', 'TINY_DENSE_VIT', 'derive_config',
    'tool_env', 'run_command'
]

#: The checkout this package is imported from (tests run in a checkout).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: The ViT of the demo config (96-d, 4 blocks, 3 heads), as an ``arch``.
DEMO_VIT_ARCH = dict(
    embed_dims=96, num_layers=4, num_heads=3, feedforward_channels=384)
#: :class:`SelfPatchDenseViT` settings of the tests: the demo ViT at 64 px,
#: patch 8, every block an output, plain BN (CPU).
TINY_DENSE_VIT = dict(
    arch=DEMO_VIT_ARCH,
    img_size=64,
    patch_size=8,
    out_indices=(0, 1, 2, 3),
    norm_cfg=dict(type='BN'))


def derive_config(src: Path, dst: Path, options: Dict[str, object]) -> Path:
    """Write ``src`` with a few settings changed to ``dst``, instead of
    re-typing its pipelines in a test.

    Args:
        src (Path): A config file (bases resolved).
        dst (Path): The ``.py`` file written.
        options (dict): ``--cfg-options``-style keys, list items by index
            (``'train_dataloader.dataset.pipeline.3.scale'``).

    Returns:
        Path: ``dst``.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(str(src))
    cfg.merge_from_dict(options)
    cfg.dump(str(dst))
    return Path(dst)


def tool_env(extra_paths: Iterable[Path] = (),
             threads: int = 1) -> Dict[str, str]:
    """Environment of a tool subprocess: this checkout (then
    ``extra_paths``, then the caller's ``PYTHONPATH``) importable and
    ``threads`` OpenMP threads (tests run several processes on few cores).

    Args:
        extra_paths (Iterable[Path]): More import roots (e.g. a test's
            folder of custom hooks).
        threads (int): ``OMP_NUM_THREADS``.

    Returns:
        dict: A copy of ``os.environ`` with these set.
    """
    env = dict(os.environ)
    env['OMP_NUM_THREADS'] = str(threads)
    paths = [str(REPO_ROOT), *map(str, extra_paths)]
    if env.get('PYTHONPATH'):
        paths.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    return env


def run_command(cmd: List[str],
                cwd: Path,
                env: Optional[Dict[str, str]] = None,
                expect_ok: bool = True,
                timeout: int = 300) -> str:
    """Run ``cmd`` (stderr into stdout) and return its output; an exit
    status other than ``expect_ok`` fails with the output's tail.

    Args:
        cmd (list[str]): The command, e.g. ``[sys.executable, TRAIN, CFG]``.
        cwd (Path): Working directory.
        env (dict, optional): Defaults to :func:`tool_env`.
        expect_ok (bool): Whether exit status 0 is expected.
        timeout (int): Seconds.

    Returns:
        str: Standard output and error.
    """
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=tool_env() if env is None else env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    ok = proc.returncode == 0
    assert ok == expect_ok, \
        f'{cmd} exited with {proc.returncode}:\n{proc.stdout[-6000:]}'
    return proc.stdout
