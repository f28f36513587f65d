# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Command-line arguments the tools share, in one place: the Runner tools'
(``tools/train.py``, ``tools/test.py``, spelled as mmpretrain's, mmdet's and
mmseg's), the analysis tools' and the converters' ``--allow-unsafe-pickle``
opt-in."""
import argparse
import os
from typing import List, Optional

from mmengine.config import DictAction

from ..checkpoint import ALLOW_UNSAFE_ENV, WEIGHT_KEYS

__all__ = [
    'add_pretrained_args', 'add_runner_args', 'add_unsafe_pickle_arg',
    'parse_runner_args'
]


def add_runner_args(parser: argparse.ArgumentParser, config_help: str,
                    work_dir_help: str) -> None:
    """Add the positional ``config`` and the options every Runner tool has.

    ``config`` is added first, so a tool's own positionals (``test.py``'s
    ``checkpoint``) follow it. The options are ``--work-dir``,
    ``--cfg-options``, ``--launcher``, ``--local-rank`` and
    ``--allow-unsafe-pickle``.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        config_help (str): Help of ``config``.
        work_dir_help (str): What the work dir receives.
    """
    parser.add_argument('config', help=config_help)
    parser.add_argument(
        '--work-dir',
        help=f'{work_dir_help}; defaults to ./work_dirs/<config name>')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs; '
        'e.g. train_cfg.max_epochs=2 "data.list=[1,2]"')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_unsafe_pickle_arg(parser)  # sets SELFPATCH_ALLOW_UNSAFE_PICKLE


def parse_runner_args(parser: argparse.ArgumentParser,
                      argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse, and export ``--local-rank`` as ``LOCAL_RANK`` when the
    launcher has not set it (mmengine's ``init_dist`` reads it).

    Args:
        parser (argparse.ArgumentParser): A parser given
            :func:`add_runner_args`.
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` when None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


class _AllowUnsafePickle(argparse.Action):
    """``--allow-unsafe-pickle``: sets ``SELFPATCH_ALLOW_UNSAFE_PICKLE=1``
    so every load of the process (and its workers) may use it."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        os.environ[ALLOW_UNSAFE_ENV] = '1'
        setattr(namespace, self.dest, True)


def add_unsafe_pickle_arg(parser: argparse.ArgumentParser) -> None:
    """Add the ``--allow-unsafe-pickle`` opt-in to a tool's parser."""
    parser.add_argument(
        '--allow-unsafe-pickle',
        action=_AllowUnsafePickle,
        help='load checkpoints whose pickle names globals beyond tensors, '
        'numpy values and mmengine log buffers (this can run code: only '
        f'for files you trust); same as {ALLOW_UNSAFE_ENV}=1')


def add_pretrained_args(parser: argparse.ArgumentParser) -> None:
    """Add the arguments every analysis tool shares: the positional
    ``config`` and ``checkpoint``, ``--key`` and ``--device`` (pass them to
    :func:`load_pretrained_selfpatch`), and the ``--allow-unsafe-pickle``
    opt-in (it sets ``SELFPATCH_ALLOW_UNSAFE_PICKLE`` when given)."""
    parser.add_argument('config', help='selfpatch_mm pretraining config')
    parser.add_argument(
        'checkpoint',
        help='pretraining checkpoint (.pth or .safetensors; path or URL)')
    parser.add_argument(
        '--key',
        choices=WEIGHT_KEYS,
        default='teacher',
        help='weights to use (default: the EMA teacher)')
    parser.add_argument(
        '--device',
        default=None,
        help='cuda or cpu (default: cuda if available)')
    add_unsafe_pickle_arg(parser)
