"""Environment fixes used by ``tools/train.py`` and ``tools/test.py``.

Two gaps of the pinned stack (torch 2.13, mmengine 0.10.7) are closed here:

* mmengine 0.10.7 loads checkpoints without ``weights_only``; Runner
  checkpoints hold a ``message_hub`` and numpy values, so ``--resume``
  failed on torch >= 2.6, and URLs unpickled anything.
  :func:`build_runner` makes sure mmengine reads every checkpoint through
  :func:`selfpatch_mm.checkpoint.load_checkpoint_file` (safe globals only).
* mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``
  unconditionally and so dies on a machine without a GPU.
  :func:`init_cpu_dist_if_needed` starts a gloo process group instead and
  makes the Runner wrap the model in DDP without ``device_ids``.
"""
import datetime
import os
import os.path as osp
import subprocess
from typing import Any, Optional

import torch
import torch.distributed as torch_dist

from ..checkpoint import register_mmengine_loaders, verify_load_from
from .config_checks import check_selfpatch_config
from .dist_guard import apply_dist_timeout, dist_timeout

__all__ = [
    'init_cpu_dist_if_needed', 'set_cpu_ddp_wrapper', 'load_config',
    'build_runner'
]


def set_cpu_ddp_wrapper(cfg: Any) -> None:
    """Make the Runner wrap the model in DDP without ``device_ids``.

    For its default wrapper, mmengine passes ``device_ids=[LOCAL_RANK]``,
    which DDP rejects for a CPU module.  A ``model_wrapper_cfg`` entry wins
    over mmengine's default arguments, so ``device_ids=None`` is set there.
    An existing ``model_wrapper_cfg`` keeps its other keys; a wrapper that is
    not a ``DistributedDataParallel`` subclass is left alone.

    Args:
        cfg (mmengine.Config): The config, changed in place.
    """
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel

    wrapper_cfg = cfg.get('model_wrapper_cfg', None)
    if wrapper_cfg is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        return
    wrapper_type = wrapper_cfg.get('type', 'MMDistributedDataParallel')
    if isinstance(wrapper_type, str):
        wrapper_cls = MODEL_WRAPPERS.get(wrapper_type)
    else:
        wrapper_cls = wrapper_type
    if wrapper_cls is not None and isinstance(wrapper_cls, type) and \
            issubclass(wrapper_cls, DistributedDataParallel):
        wrapper_cfg['device_ids'] = None


def _slurm_master_addr() -> str:
    """Return the first host of the SLURM node list."""
    node_list = os.environ['SLURM_NODELIST']
    return subprocess.getoutput(
        f'scontrol show hostname {node_list} | head -n1').strip()


def _set_env_from_launcher(launcher: str) -> None:
    """Fill the torchrun-style env variables for slurm and mpi launches."""
    if launcher == 'slurm':
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ['SLURM_LOCALID'])
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            os.environ['MASTER_ADDR'] = _slurm_master_addr()
    elif launcher == 'mpi':
        os.environ.setdefault('RANK', os.environ['OMPI_COMM_WORLD_RANK'])
        os.environ.setdefault('WORLD_SIZE', os.environ['OMPI_COMM_WORLD_SIZE'])
        os.environ.setdefault('LOCAL_RANK',
                              os.environ['OMPI_COMM_WORLD_LOCAL_RANK'])
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
    os.environ.setdefault('LOCAL_RANK', '0')


def init_cpu_dist_if_needed(launcher: str, cfg: Optional[Any] = None) -> bool:
    """Start a gloo process group for a distributed run without CUDA.

    Call it before the Runner is built.  ``Runner.setup_env`` skips
    mmengine's ``init_dist`` (which needs a GPU) when a process group already
    exists.  With CUDA present, or with ``launcher='none'``, nothing happens
    and mmengine initialises as usual.

    Args:
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
            For ``'pytorch'`` the variables set by torchrun (``RANK``,
            ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) are used.
        cfg (mmengine.Config, optional): When given, its
            ``model_wrapper_cfg`` is set for CPU DDP (see
            :func:`set_cpu_ddp_wrapper`). Defaults to None.

    Returns:
        bool: True when this is a CPU distributed run (the group was started
        here or already existed), False otherwise.

    Raises:
        ValueError: If ``launcher`` is not one of the names above.
    """
    if launcher == 'none':
        return False
    if launcher not in ('pytorch', 'slurm', 'mpi'):
        raise ValueError(f'Unknown launcher {launcher!r}')
    if torch.cuda.is_available():
        return False
    if not torch_dist.is_initialized():
        _set_env_from_launcher(launcher)
        missing = [
            k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
            if k not in os.environ
        ]
        if missing:
            raise RuntimeError(
                f'--launcher {launcher} needs the env variables {missing}; '
                'start the job with torchrun (tools/dist_train.sh).')
        torch_dist.init_process_group(
            backend='gloo',
            init_method='env://',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            # a frozen or dead rank stops the others after this long
            timeout=datetime.timedelta(seconds=dist_timeout(cfg)))
    if cfg is not None:
        set_cpu_ddp_wrapper(cfg)
    return True


def load_config(config: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none'):
    """Load a config with the command-line overrides every tool shares.

    Args:
        config (str): Config file.
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        work_dir (str, optional): ``--work-dir``; otherwise the config's,
            else ``./work_dirs/<config name>``.
        launcher (str): ``--launcher``.

    Returns:
        mmengine.Config: The merged config.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    _fit_loaders_without_workers(cfg)
    # Resolved once, here: mmengine gives dist_cfg.timeout to
    # init_process_group on GPUs, the gloo group and tools/train.py's
    # failure guard read the same value (dist_timeout).
    apply_dist_timeout(cfg)
    return cfg


def _fit_loaders_without_workers(cfg) -> None:
    """``num_workers=0`` (e.g. from ``--cfg-options``) with the paper
    config's ``persistent_workers``/``prefetch_factor``: torch's DataLoader
    rejects both without worker processes, and they mean nothing there."""
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name, None)
        if loader and loader.get('num_workers', 1) == 0:
            loader['persistent_workers'] = False
            loader.pop('prefetch_factor', None)


def build_runner(cfg):
    """Build the Runner of ``cfg`` after the environment fixes above:
    safe checkpoint loading, and gloo + CPU DDP for launched runs without
    a GPU.

    A ``load_from`` file (not a resume) is checked against the built model
    first: when most backbone weights are missing or of other shapes the
    build fails with a summary, instead of mmengine warning and training a
    random network. ``allow_partial_load=True`` in the config allows it.

    Args:
        cfg (mmengine.Config): A config from :func:`load_config`.

    Returns:
        mmengine.runner.Runner: The runner (``RUNNERS.build`` when the config
        names a ``runner_type``).

    Raises:
        selfpatch_mm.checkpoint.CheckpointMismatchError: For a ``load_from``
            that does not fit the model.
    """
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    register_mmengine_loaders()
    # SelfPatch settings against the crops, before anything is built
    check_selfpatch_config(cfg)
    init_cpu_dist_if_needed(cfg.launcher, cfg)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    if not cfg.get('resume', False):
        verify_load_from(runner.model, cfg.get('load_from', None),
                         cfg.get('allow_partial_load', False))
    return runner
