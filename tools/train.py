"""Train with any OpenMMLab 2.x config (SelfPatch pretraining, mmpretrain,
mmdet or mmseg).

Examples::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
    bash tools/dist_train.sh CONFIG NUM_PROCS [extra args]
"""
import argparse
import os
from typing import Optional

import torch
from mmengine.config import Config

from selfpatch_mm.apis import build_runner, load_config, register_all_modules
from selfpatch_mm.apis.cli import add_runner_args, parse_runner_args
from selfpatch_mm.apis.dist_guard import (dist_timeout,
                                          stop_on_dist_failure)

# optim wrapper type -> its AMP counterpart for --amp
AMP_WRAPPERS = {
    'OptimWrapper': 'AmpOptimWrapper',
    'SelfPatchOptimWrapper': 'SelfPatchAmpOptimWrapper',
    # picks AMP only on CUDA by itself; --amp makes it explicit
    'AutoAmpSelfPatchOptimWrapper': 'SelfPatchAmpOptimWrapper',
}
AMP_DTYPES = {'fp16': 'float16', 'bf16': 'bfloat16'}
# Set by tools/slurm_train.sh: a requeued job resumes from its work dir's
# newest checkpoint (or starts, when there is none) without --resume.
AUTO_RESUME_ENV = 'SELFPATCH_AUTO_RESUME'

# Our models, datasets, hooks and optimizer wrappers, for configs without
# custom_imports (configs with it import the same modules again, a no-op).
register_all_modules()


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Parse train.py's command line: the Runner arguments of
    :mod:`selfpatch_mm.apis.cli`, then ``--resume``, ``--amp``,
    ``--amp-dtype``, ``--compile`` and ``--auto-scale-lr``.

    Args:
        argv (list, optional): Arguments; ``sys.argv[1:]`` when None.

    Returns:
        argparse.Namespace: ``config``, ``work_dir``, ``resume``, ...
    """
    parser = argparse.ArgumentParser(description='Train a model')
    add_runner_args(parser, 'train config file path',
                    'the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; with no path, resume from the '
        'latest checkpoint in the work dir, if there is one')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision training: the config\'s optim_wrapper.dtype '
        'if it sets one, else fp16 with a GradScaler (the official recipe); '
        '--amp-dtype overrides it; CUDA, or CPU autocast')
    parser.add_argument(
        '--amp-dtype',
        choices=sorted(AMP_DTYPES),
        default=None,
        help='autocast dtype; implies --amp. fp16 (V100 and newer; '
        'default) or bf16 (A100/H100 and CPUs: no loss scaling)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the student and teacher parts (adds a '
        'CompileHook: one graph per part and crop resolution, compiled in '
        'the first iteration; see docs/training_on_gpus.md)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size against '
        'the config\'s auto_scale_lr.base_batch_size')
    return parse_runner_args(parser, argv)


def enable_amp(cfg: Config, dtype: Optional[str] = 'fp16') -> None:
    """Switch the config's optimizer wrapper to its AMP variant.

    Other keys of ``optim_wrapper`` are kept.  ``SelfPatchOptimWrapper`` and
    ``AutoAmpSelfPatchOptimWrapper`` become ``SelfPatchAmpOptimWrapper``
    (CUDA or CPU autocast); mmengine's ``OptimWrapper`` becomes
    ``AmpOptimWrapper`` (CUDA only).

    Args:
        cfg (Config): The config, changed in place.
        dtype (str, optional): ``'fp16'`` (official, with a GradScaler) or
            ``'bf16'`` (no scaler); None keeps the config's
            ``optim_wrapper.dtype`` (the ViT-S/8 config's bf16), fp16 if it
            has none.

    Raises:
        RuntimeError: If the wrapper has no known AMP variant, or needs a
            CUDA device that is not there.
    """
    optim_wrapper = cfg.get('optim_wrapper', None)
    if optim_wrapper is None:
        raise RuntimeError('--amp: the config has no `optim_wrapper`.')
    current = optim_wrapper.get('type', 'OptimWrapper')
    if current not in AMP_WRAPPERS and current not in AMP_WRAPPERS.values():
        raise RuntimeError(
            f'--amp: do not know the AMP variant of optim_wrapper type '
            f'{current!r}; set it in the config instead.')
    if dtype is None:
        named = str(optim_wrapper.get('dtype', 'float16'))
        dtype = {v: k for k, v in AMP_DTYPES.items()}.get(named, named)
        if dtype not in AMP_DTYPES:
            raise RuntimeError(f'--amp: optim_wrapper.dtype={named!r} is not '
                               f'one of {list(AMP_DTYPES.values())}.')
    optim_wrapper.type = AMP_WRAPPERS.get(current, current)
    # the explicit --amp asks for autocast: no fp32 fallback
    optim_wrapper.pop('bf16_fallback', None)
    if optim_wrapper.type == 'AmpOptimWrapper' and \
            not torch.cuda.is_available():
        raise RuntimeError(
            "--amp: mmengine's AmpOptimWrapper needs a CUDA device, but "
            'torch.cuda.is_available() is False. Run without --amp on the '
            'CPU, or use SelfPatchOptimWrapper, whose AMP variant also runs '
            'CPU autocast.')
    optim_wrapper.dtype = AMP_DTYPES[dtype]
    if dtype == 'fp16':
        optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        optim_wrapper.pop('loss_scale', None)


def enable_compile(cfg: Config) -> None:
    """Add a ``CompileHook`` to ``custom_hooks``, unless the config has
    one (its settings then stay).

    Args:
        cfg (Config): The config, changed in place.
    """
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') in ('CompileHook', 'selfpatch_mm.CompileHook')
               for h in hooks):
        hooks.append(dict(type='CompileHook'))
    cfg.custom_hooks = hooks


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply ``--amp``/``--amp-dtype``, ``--compile``, ``--resume`` and
    ``--auto-scale-lr`` to the config. ``SELFPATCH_AUTO_RESUME=1`` means
    ``--resume`` (auto) when no ``--resume`` is given.

    Args:
        cfg (Config): The loaded config, changed in place.
        args (argparse.Namespace): Output of :func:`parse_args`.

    Returns:
        Config: ``cfg``.
    """
    if args.amp or args.amp_dtype:
        enable_amp(cfg, args.amp_dtype)
    if getattr(args, 'compile', False):
        enable_compile(cfg)

    if args.resume is None and os.environ.get(AUTO_RESUME_ENV, '') not in (
            '', '0'):
        args.resume = 'auto'
    if args.resume == 'auto':
        # Runner finds the latest checkpoint of work_dir itself.
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or \
                'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError(
                '--auto-scale-lr: the config needs `auto_scale_lr = '
                'dict(base_batch_size=...)`.')
        cfg.auto_scale_lr.enable = True
    return cfg


def main(argv: Optional[list] = None) -> None:
    """Build the Runner from the config and train.

    Args:
        argv (list, optional): Arguments; ``sys.argv[1:]`` when None.
    """
    args = parse_args(argv)
    cfg = merge_args(
        load_config(args.config, args.cfg_options, args.work_dir,
                    args.launcher), args)
    # Trusted local checkpoints; gloo + CPU DDP for launched runs without
    # a GPU (see selfpatch_mm.apis.setup_env). A rank that freezes or dies
    # stops the others after env_cfg.dist_cfg.timeout, naming it.
    with stop_on_dist_failure(dist_timeout(cfg)):
        build_runner(cfg).train()


if __name__ == '__main__':
    main()
