"""Test a checkpoint with any OpenMMLab 2.x config (mmpretrain, mmdet or
mmseg); the config's ``test_evaluator`` prints its metrics (e.g. COCO AP,
mIoU).

Examples::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out res.pkl]
    # prediction pictures (mmdet / mmseg configs), one per test image
    python tools/test.py CONFIG CHECKPOINT --show-dir work_dirs/pictures
    bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [extra args]
"""
import argparse
import os
from typing import Optional

from mmengine.config import Config, ConfigDict

from selfpatch_mm.apis import build_runner, load_config, register_all_modules
from selfpatch_mm.apis.cli import add_runner_args, parse_runner_args

# Our modules, for configs without custom_imports (see tools/train.py).
register_all_modules()


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Parse test.py's command line: ``config`` and ``checkpoint``, the
    Runner arguments of :mod:`selfpatch_mm.apis.cli`, ``--out`` and the
    ``--show*`` options.

    Args:
        argv (list, optional): Arguments; ``sys.argv[1:]`` when None.

    Returns:
        argparse.Namespace: ``config``, ``checkpoint``, ``out``, ...
    """
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    add_runner_args(parser, 'test config file path',
                    'the dir to save the evaluation logs')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        type=str,
        help='dump the raw predictions to this pickle file (.pkl/.pickle)')
    parser.add_argument(
        '--show-dir',
        help='draw the predictions of every test image into this folder '
        '(relative to the current directory); needs a `visualization` hook '
        'in default_hooks, as mmdet\'s and mmseg\'s runtime configs have')
    parser.add_argument(
        '--show',
        action='store_true',
        help='show the predictions in a window (needs a display)')
    parser.add_argument(
        '--show-interval',
        type=int,
        default=1,
        help='draw every n-th test iteration (mmseg\'s hook; default: '
        'every one, mmseg\'s own default is 50)')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='seconds each picture is shown with --show')
    return parse_runner_args(parser, argv)


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


def trigger_visualization_hook(cfg: Config,
                               show_dir: Optional[str],
                               show: bool = False,
                               wait_time: float = 2,
                               interval: int = 1) -> None:
    """Turn on the config's visualisation hook, as mmdet's and mmseg's
    ``tools/test.py`` do.

    mmdet's ``DetVisualizationHook`` writes ``test_out_dir/<image name>``;
    mmseg's ``SegVisualizationHook`` writes through the visualizer's
    backends, so the visualizer's ``save_dir`` is set instead (pictures in
    ``<show_dir>/vis_data/vis_image/``). ``show_dir`` is made absolute, so
    mmdet does not put it under ``<work_dir>/<timestamp>``.

    Args:
        cfg (Config): The config, changed in place.
        show_dir (str, optional): Folder of the pictures.
        show (bool): Show each picture in a window.
        wait_time (float): Seconds a shown picture stays.
        interval (int): Draw every n-th iteration (mmseg's hook only;
            mmdet's draws every test image).

    Raises:
        RuntimeError: If ``default_hooks`` has no ``visualization`` hook.
    """
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise RuntimeError(
            '--show/--show-dir need a visualization hook in default_hooks, '
            "e.g. visualization=dict(type='DetVisualizationHook') (mmdet) or "
            "dict(type='SegVisualizationHook') (mmseg); this config has "
            f'none (its hooks: {sorted(cfg.get("default_hooks", {}))}).')
    hook['draw'] = True
    if 'Seg' in str(hook.get('type', '')):
        hook['interval'] = interval
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if show_dir:
        show_dir = os.path.abspath(show_dir)
        if 'Seg' in str(hook.get('type', '')):
            cfg.visualizer['save_dir'] = show_dir
        else:
            hook['test_out_dir'] = show_dir


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Load the checkpoint without resuming, add ``--out``'s dump metric
    and turn on the pictures of ``--show``/``--show-dir``.

    Args:
        cfg (Config): The loaded config, changed in place.
        args (argparse.Namespace): Output of :func:`parse_args`.

    Returns:
        Config: ``cfg``.
    """
    cfg.load_from = args.checkpoint
    # Testing only: never resume optimizer state.
    cfg.resume = False
    if args.out is not None:
        add_dump_metric(cfg, args.out)
    if args.show or args.show_dir:
        trigger_visualization_hook(cfg, args.show_dir, args.show,
                                   args.wait_time, args.show_interval)
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
