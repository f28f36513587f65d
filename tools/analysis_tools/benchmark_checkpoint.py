# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""What one checkpoint of a config's model costs: size and seconds.

Builds the config's Runner on a few generated images, trains one iteration
(so the optimizer holds its AdamW moments, as in a real run), then writes
``latest.pth`` ``--repeat`` times through ``SafeCheckpointHook.save_latest``
(the file a per-epoch or preemption save writes), timing its parts: the
finite-state checks (before the write, and of the state being saved),
collecting and serialising the state (``Runner.save_checkpoint``, which
includes one of those checks), fsync, and the read-back check
(``verify=True``). What the parts leave of the total is the rest of the
hook (the generator states, renames, ``last_checkpoint``). Prints a table,
then one JSON line.

Example::

    python tools/analysis_tools/benchmark_checkpoint.py \
        configs/selfpatch/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from typing import Dict, List, Optional
from unittest import mock

import cv2
import numpy as np
import torch

from selfpatch_mm.checkpoint import load_checkpoint_file
from selfpatch_mm.engine.hooks import safe_checkpoint_hook
from selfpatch_mm.apis import build_runner, load_config, register_all_modules

DEFAULT_CONFIG = ('configs/selfpatch/'
                  'selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG)
    parser.add_argument('--repeat', type=int, default=3,
                        help='checkpoints written (the median is reported)')
    parser.add_argument('--work-dir', default=None,
                        help='where the checkpoints go (the file system '
                        'measured); a temporary folder by default')
    return parser.parse_args(argv)


def _images(folder: str, num: int = 2, size: int = 256) -> None:
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for i in range(num):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(osp.join(folder, f'{i}.png'), img)


class _Timed:
    """Adds the seconds each call of ``fn`` takes to ``times[name]``."""

    def __init__(self, times: Dict[str, List[float]], name: str, fn):
        self.times, self.name, self.fn = times, name, fn

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.times[self.name].append(time.perf_counter() - start)


def measure(config: str, repeat: int, work_dir: str) -> dict:
    """Train one iteration of ``config``, then time ``repeat`` saves."""
    register_all_modules()
    data = osp.join(work_dir, 'images')
    _images(data)
    cfg = load_config(
        config, {
            'train_dataloader.dataset.data_root': data,
            'train_dataloader.batch_size': 2,
            'train_dataloader.num_workers': 0,
            'train_cfg.max_epochs': 1,
            'default_hooks.checkpoint.save_last': False,
            'default_hooks.checkpoint.save_latest': False,
            'default_hooks.logger.interval': 1,
            'auto_scale_lr.enable': False,
        }, osp.join(work_dir, 'work'))
    runner = build_runner(cfg)
    runner.train()
    hook = next(h for h in runner.hooks if hasattr(h, 'save_latest'))
    times: Dict[str, List[float]] = defaultdict(list)
    total, size = [], 0
    timed = (
        (runner, 'save_checkpoint', 'Runner.save_checkpoint'),
        (safe_checkpoint_hook, 'refuse_nonfinite', 'finite-state check'),
        (safe_checkpoint_hook, 'fsync_file', 'fsync'),
        (safe_checkpoint_hook, 'check_checkpoint_file', 'read-back check'),
    )
    patches = [
        mock.patch.object(owner, attr, _Timed(times, name,
                                              getattr(owner, attr)))
        for owner, attr, name in timed
    ]
    for p in patches:
        p.start()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            path = hook.save_latest(runner)
            total.append(time.perf_counter() - start)
            size = osp.getsize(path)
    finally:
        for p in patches:
            p.stop()
    ckpt = load_checkpoint_file(path)
    parts = {'model': ckpt['state_dict'], 'optimizer': ckpt['optimizer']}
    return dict(
        config=config,
        file_mib=size / 2**20,
        part_mib={k: _tensor_bytes(v) / 2**20 for k, v in parts.items()},
        sec_total=statistics.median(total),
        sec_parts={k: statistics.median(v) for k, v in times.items()},
        repeat=repeat,
        work_dir=work_dir,
        cpu=_cpu_name(),
        threads=torch.get_num_threads(),
        load_average_1min=os.getloadavg()[0])


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _tensor_bytes(obj) -> int:
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def format_table(r: dict) -> str:
    lines = [
        f"checkpoint of {r['config']} (median of {r['repeat']})",
        f"{'file (MiB)':<28}{r['file_mib']:>10.1f}",
    ]
    lines += [f"{'  tensors: ' + k + ' (MiB)':<28}{v:>10.1f}"
              for k, v in r['part_mib'].items()]
    lines.append(f"{'seconds per checkpoint':<28}{r['sec_total']:>10.2f}")
    lines += [f"{'  ' + k:<28}{v:>10.2f}" for k, v in r['sec_parts'].items()]
    lines.append(f"{'load average (1 min)':<28}"
                 f"{r['load_average_1min']:>10.2f}")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    if args.work_dir:
        record = measure(args.config, args.repeat, args.work_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            record = measure(args.config, args.repeat, tmp)
    print(format_table(record))
    print(json.dumps(record))
    return record


if __name__ == '__main__':
    main()
