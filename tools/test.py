"""Test a checkpoint with any OpenMMLab 2.x config (mmpretrain, mmdet or
mmseg); the config's ``test_evaluator`` prints its metrics (e.g. COCO AP,
mIoU).

Examples::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out res.pkl]
    bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [extra args]
"""
import argparse
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

# Registers this project's modules before the Runner builds anything.
import selfpatch_mm  # noqa: F401
from selfpatch_mm.utils import (allow_trusted_checkpoints,
                                init_cpu_dist_if_needed)


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
    """Merge the command-line arguments into the config.

    Args:
        cfg (Config): The loaded config.
        args (argparse.Namespace): Parsed arguments.

    Returns:
        Config: The updated config.
    """
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
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
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)

    allow_trusted_checkpoints()
    init_cpu_dist_if_needed(cfg.launcher, cfg)

    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    return runner.test()


if __name__ == '__main__':
    main()
