# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Plot a config's schedules: mmpretrain's ``vis_scheduler.py`` plus the
teacher's.

mmpretrain's tool (``mmpretrain/.mim/tools/visualization/vis_scheduler.py``)
runs our configs as they are and plots ``lr``, ``wd`` and ``momentum`` (the
optimizer's, AdamW's beta1). This one simulates the same run with the same
mmpretrain parts and also plots the EMA teacher's momentum
(``TeacherEMAHook``) and temperature (``TeacherTempWarmupHook``), read from
what the hooks log (``train/teacher_momentum``, ``train/teacher_temp``).

Example::

    python tools/visualization/vis_scheduler.py \\
        configs/selfpatch/selfpatch_vit-small-p16_8xb128-coslr-200e_in1k.py \\
        -p teacher_momentum --dataset-size 1281167 --ngpus 8 \\
        --not-show -s momentum.png
"""
import argparse
import importlib.util
import os.path as osp
from pathlib import Path
from typing import List, Optional
from unittest.mock import MagicMock

import mmpretrain
from mmengine.config import Config, DictAction
from mmengine.runner import Runner
from mmengine.visualization import Visualizer

from selfpatch_mm.apis import register_all_modules

TEACHER = dict(teacher_momentum='Teacher momentum',
               teacher_temp='Teacher temperature')
OPTIMIZER = dict(lr='Learning Rate', momentum='Momentum', wd='Weight Decay')


def _mmpretrain_tool():
    """mmpretrain's ``vis_scheduler`` script module (not a package, so it is
    loaded from its path in the installed package)."""
    path = osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'visualization',
        'vis_scheduler.py')
    spec = importlib.util.spec_from_file_location('mmpretrain_vis_scheduler',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (mmpretrain's options, two more choices)."""
    parser = argparse.ArgumentParser(description='Plot schedules')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '-p', '--parameter', default='lr',
        choices=[*OPTIMIZER, *TEACHER], help='the schedule to plot')
    parser.add_argument(
        '-d', '--dataset-size', type=int,
        help='dataset size (skips building the dataset)')
    parser.add_argument('-n', '--ngpus', type=int, default=1)
    parser.add_argument('-s', '--save-path', type=Path, help='output image')
    parser.add_argument('--log-level', default='WARNING')
    parser.add_argument('--title', type=str, help='title of the figure')
    parser.add_argument('--style', default='whitegrid')
    parser.add_argument('--not-show', action='store_true')
    parser.add_argument('--window-size', default='12*7', help='"W*H"')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def simulate(cfg: Config, iters_per_epoch: int, tool) -> dict:
    """Run the schedules on mmpretrain's stand-in model; every value per
    iteration, optimizer and teacher ones."""
    record = tool.ParamRecordHook(by_epoch=True)
    teacher = {k: [] for k in TEACHER}

    class TeacherRecordHook(tool.Hook):
        priority = 'LOWEST'  # after TeacherEMAHook logged the momentum

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            for key in TEACHER:
                scalars = runner.message_hub.log_scalars
                if f'train/{key}' in scalars:
                    teacher[key].append(scalars[f'train/{key}'].current())

    runner = Runner(
        model=tool.SimpleModel(),
        work_dir=cfg.work_dir,
        train_dataloader=type('Loader', (list, ), dict(
            dataset=MagicMock(metainfo=None)))(range(iters_per_epoch)),
        train_cfg=cfg.train_cfg,
        log_level=cfg.log_level,
        optim_wrapper=cfg.optim_wrapper,
        param_scheduler=cfg.param_scheduler,
        default_scope=cfg.default_scope,
        default_hooks=dict(
            param_scheduler=cfg.default_hooks['param_scheduler'],
            runtime_info=None, timer=None, logger=None, checkpoint=None,
            sampler_seed=None, param_record=record),
        visualizer=MagicMock(spec=Visualizer),
        custom_hooks=list(cfg.get('custom_hooks', [])) +
        [TeacherRecordHook()])
    runner.train()
    return dict(lr=record.lr_list, momentum=record.momentum_list,
                wd=record.wd_list, **teacher)


def main(argv: Optional[List[str]] = None) -> None:
    """Simulate the run and plot (or save) one schedule."""
    args = parse_args(argv)
    register_all_modules()  # the hooks and optimizer wrappers
    tool = _mmpretrain_tool()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.setdefault('work_dir', osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0]))
    cfg.log_level = args.log_level
    batch = cfg.train_dataloader.batch_size * args.ngpus
    size = args.dataset_size
    if size is None:
        from mmpretrain.datasets import build_dataset
        size = len(build_dataset(cfg.train_dataloader.dataset))
    iters = size // batch
    values = simulate(cfg, iters, tool)[args.parameter]
    if not values:
        raise SystemExit(f'{args.config} logs no {args.parameter} (no '
                         'TeacherEMAHook / TeacherTempWarmupHook?)')
    name = {**OPTIMIZER, **TEACHER}[args.parameter]
    tool.plot_curve(values, args, name, iters, by_epoch=True)
    print(f'{name}: first {values[0]:.6g}, last {values[-1]:.6g}, '
          f'{len(values)} iterations')
    if args.save_path:
        tool.plt.savefig(args.save_path)
        print(f'The {name} graph is saved at {args.save_path}')
    if not args.not_show:
        tool.plt.show()


if __name__ == '__main__':
    main()
