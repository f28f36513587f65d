"""Test a checkpoint with any OpenMMLab 2.x config (mmpretrain, mmdet or
mmseg); the config's ``test_evaluator`` prints its metrics (e.g. COCO AP,
mIoU).

Examples::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out res.pkl]
    bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [extra args]
"""
import argparse
import os
from typing import Optional

from mmengine.config import Config, ConfigDict, DictAction

# Registers this project's modules before the Runner builds anything.
import selfpatch_mm  # noqa: F401
from selfpatch_mm.checkpoint import add_unsafe_pickle_arg
from selfpatch_mm.utils import build_runner, load_config


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list, optional): Arguments; ``sys.argv[1:]`` when None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the dir to save the evaluation logs; '
        'defaults to ./work_dirs/<config name>')
    parser.add_argument(
        '--out',
        type=str,
        help='dump the raw predictions to this pickle file (.pkl/.pickle)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_unsafe_pickle_arg(parser)  # sets SELFPATCH_ALLOW_UNSAFE_PICKLE
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def add_dump_metric(cfg: Config, out: str) -> None:
    """Append mmengine's ``DumpResults`` metric to ``cfg.test_evaluator``.

    Args:
        cfg (Config): The config, changed in place.
        out (str): Output pickle path.

    Raises:
        ValueError: If ``out`` is not a ``.pkl``/``.pickle`` path.
    """
    if not out.endswith(('.pkl', '.pickle')):
        raise ValueError('--out must be a .pkl or .pickle file path')
    # The `mmengine.` scope prefix picks mmengine's metric whatever the
    # config's default_scope is.
    dump = ConfigDict(type='mmengine.DumpResults', out_file_path=out)
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        cfg.test_evaluator = [*evaluator, dump]
    elif 'metrics' in evaluator and evaluator.get('type', 'Evaluator') in (
            'Evaluator', 'mmengine.Evaluator'):
        metrics = evaluator.metrics
        if not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        evaluator.metrics = [*metrics, dump]
    else:
        cfg.test_evaluator = [evaluator, dump]


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the tool's own command-line arguments into the config.

    Args:
        cfg (Config): The loaded config.
        args (argparse.Namespace): Parsed arguments.

    Returns:
        Config: The updated config.
    """
    cfg.load_from = args.checkpoint
    # Testing only: never resume optimizer state.
    cfg.resume = False
    if args.out is not None:
        add_dump_metric(cfg, args.out)
    return cfg


def main(argv: Optional[list] = None) -> dict:
    """Build the Runner from the config and run its test loop.

    Args:
        argv (list, optional): Arguments; ``sys.argv[1:]`` when None.

    Returns:
        dict: The metrics returned by ``runner.test()``.
    """
    args = parse_args(argv)
    cfg = merge_args(
        load_config(args.config, args.cfg_options, args.work_dir,
                    args.launcher), args)
    return build_runner(cfg).test()


if __name__ == '__main__':
    main()
