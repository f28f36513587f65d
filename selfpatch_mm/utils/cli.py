# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Command-line arguments that ``tools/train.py`` and ``tools/test.py``
share, as mmengine-based tools spell them (mmpretrain's, mmdet's and
mmseg's ``train.py``/``test.py``)."""
import argparse
import os
from typing import List, Optional

from mmengine.config import DictAction

from ..checkpoint import add_unsafe_pickle_arg

__all__ = ['add_runner_args', 'parse_runner_args']


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
