# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Images per second per core of the multi-crop data pipeline: the config's
``train_pipeline`` against the official torchvision one.

Both run in this process on one thread (``torch.set_num_threads(1)``,
``cv2.setNumThreads(1)``), as one dataloader worker does, on the same
generated JPEGs (textured colour images, 500x375 by default):

- ours: the config's ``train_dataloader.dataset.pipeline`` (decode with
  ``RobustLoadImageFromFile``, ``DINOMultiCrop``, ``PackInputs``), which
  ends in uint8 tensors; normalisation is the data preprocessor's, on the
  device;
- official: ``DataAugmentationDINO`` of facebookresearch/dino (as used by
  alinlab/SelfPatch) with the config's crop sizes, scales and number of
  local crops, on images opened as torchvision's ``ImageFolder`` does; it
  ends in normalised float tensors.

The two alternate for ``--rounds`` rounds over all images (after
``--warmup`` rounds of each), so load from other processes hits both
alike; the medians of the per-round rates and of the per-round ratios are
reported. A further round of ours with timed wrappers around each step
gives the breakdown (ms per image). Prints a table, then one JSON line.

Example::

    python tools/analysis_tools/benchmark_pipeline.py \
        configs/selfpatch/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional
from unittest import mock

import cv2
import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmpretrain.registry import TRANSFORMS

import selfpatch_mm.datasets  # noqa: F401  (registers the transforms)
from selfpatch_mm.datasets.transforms import dino_multi_crop

# The official pipeline, the baseline timed here, is the tests' reference
# transcription (one copy, in the checkout: tests/reference).
sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))), 'tests'))
from reference.official_dino_augmentation import (  # noqa: E402
    DataAugmentationDINO, pil_loader)

DEFAULT_CONFIG = ('configs/selfpatch/'
                  'selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG)
    parser.add_argument('--images', type=int, default=32,
                        help='number of generated JPEGs (one pass = a round)')
    parser.add_argument('--size', type=int, nargs=2, default=(500, 375),
                        metavar=('W', 'H'), help='JPEG width and height')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings (key=value)')
    return parser.parse_args(argv)


def write_jpegs(folder: str, num: int, width: int, height: int,
                seed: int = 0) -> List[str]:
    """Textured colour JPEGs (smooth colour fields plus noise, quality 90,
    roughly the bytes per pixel of ImageNet photographs)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(num):
        coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        img = cv2.resize(coarse, (width, height),
                         interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + rng.normal(0, 10, img.shape), 0,
                      255).astype(np.uint8)
        path = os.path.join(folder, f'img_{i:04d}.jpg')
        cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def build_ours(cfg: Config) -> Callable[[str], dict]:
    """The config's training pipeline, applied to one file path."""
    init_default_scope('mmpretrain')
    steps = [
        TRANSFORMS.build(t) for t in cfg.train_dataloader.dataset.pipeline
    ]

    def run(path: str) -> dict:
        results = dict(img_path=path)
        for step in steps:
            results = step(results)
        return results

    run.steps = steps
    return run


def multicrop_cfg(cfg: Config) -> dict:
    """The ``DINOMultiCrop`` settings of the config's pipeline."""
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'DINOMultiCrop':
            return t
    raise ValueError('The config has no DINOMultiCrop in '
                     'train_dataloader.dataset.pipeline.')


def build_official(cfg: Config) -> Callable[[str], list]:
    """``DataAugmentationDINO`` with the config's crops, on a file path."""
    mc = multicrop_cfg(cfg)
    default = TRANSFORMS.get('DINOMultiCrop')(**{
        k: v
        for k, v in mc.items() if k != 'type'
    })
    if default.num_global != 2:
        raise ValueError('The official pipeline has 2 global crops.')
    aug = DataAugmentationDINO(default.scales[0], default.scales[-1],
                               default.num_views - 2, default.sizes[0],
                               default.sizes[-1])
    return lambda path: aug(pil_loader(path))


def images_per_s(fn: Callable[[str], object], paths: List[str]) -> float:
    start = time.perf_counter()
    for path in paths:
        fn(path)
    return len(paths) / (time.perf_counter() - start)


class StepTimer:
    """Accumulates wall time per named step."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = defaultdict(float)

    def wrap(self, name: str, fn: Callable) -> Callable:

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start

        return timed


def breakdown(ours: Callable[[str], dict],
              paths: List[str]) -> Dict[str, float]:
    """ms per image of each step of ours: timed wrappers around the calls
    the pipeline makes (decode, parameter sampling, crop+resize+flip, each
    photometric op, packing); "other" is the rest of the pipeline."""
    timer = StepTimer()
    load, multicrop, *rest = ours.steps
    names = ('brightness', 'contrast', 'saturation', 'hue')
    jitter = tuple(
        timer.wrap(n, f) for n, f in zip(names, dino_multi_crop._JITTER_OPS))
    patches = [
        mock.patch.object(load, 'transform',
                          timer.wrap('decode', load.transform)),
        mock.patch.object(multicrop, '_sample',
                          timer.wrap('sample params', multicrop._sample)),
        mock.patch.object(
            multicrop, '_resized_crop',
            timer.wrap('crop+resize+flip', multicrop._resized_crop)),
        mock.patch.object(dino_multi_crop, '_JITTER_OPS', jitter),
    ]
    for name in ('to_grayscale', 'gaussian_blur', 'solarize'):
        patches.append(
            mock.patch.object(
                dino_multi_crop, name,
                timer.wrap(name.replace('to_', '').replace('gaussian_', ''),
                           getattr(dino_multi_crop, name))))
    for step in rest:
        patches.append(
            mock.patch.object(
                step, 'transform',
                timer.wrap(type(step).__name__, step.transform)))
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        start = time.perf_counter()
        for path in paths:
            ours(path)
        total = time.perf_counter() - start
    ms = {k: 1e3 * v / len(paths) for k, v in timer.seconds.items()}
    ms['other'] = 1e3 * total / len(paths) - sum(ms.values())
    ms['total'] = 1e3 * total / len(paths)
    return ms


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    ours, official = build_ours(cfg), build_official(cfg)
    rates = dict(ours=[], official=[])
    with tempfile.TemporaryDirectory() as folder:
        paths = write_jpegs(folder, args.images, *args.size, seed=args.seed)
        for r in range(args.warmup + args.rounds):
            # alternate which goes first, so neither always runs warm
            order = ('ours', 'official') if r % 2 == 0 else ('official',
                                                             'ours')
            for name in order:
                rate = images_per_s(ours if name == 'ours' else official,
                                    paths)
                if r >= args.warmup:
                    rates[name].append(rate)
        steps = breakdown(ours, paths)
    ratios = [a / b for a, b in zip(rates['ours'], rates['official'])]
    record = dict(
        config=args.config,
        images=args.images,
        image_size=list(args.size),
        rounds=args.rounds,
        threads=torch.get_num_threads(),
        cpu=cpu_name(),
        load_avg_1min=os.getloadavg()[0],
        ours_images_per_s=statistics.median(rates['ours']),
        official_images_per_s=statistics.median(rates['official']),
        ratio=statistics.median(ratios),
        ours_rounds=rates['ours'],
        official_rounds=rates['official'],
        breakdown_ms_per_image=steps)
    print_table(record)
    print(json.dumps(record))
    return record


def print_table(r: dict) -> None:
    print(f"pipeline benchmark: {r['images']} JPEGs "
          f"{r['image_size'][0]}x{r['image_size'][1]}, {r['rounds']} rounds, "
          f"1 thread, {r['cpu']}, load {r['load_avg_1min']:.1f}")
    print('| | images/s per core (median) | rounds |')
    print('| --- | ---: | --- |')
    for name in ('ours', 'official'):
        rounds = ', '.join(f'{v:.1f}' for v in r[f'{name}_rounds'])
        print(f"| {name} | {r[f'{name}_images_per_s']:.1f} | {rounds} |")
    print(f"| ratio (median of rounds) | **{r['ratio']:.2f}x** | |")
    print()
    print('| our step | ms/image | share |')
    print('| --- | ---: | ---: |')
    steps = r['breakdown_ms_per_image']
    for name, ms in sorted(steps.items(), key=lambda kv: -kv[1]):
        if name != 'total':
            print(f'| {name} | {ms:.3f} | {100 * ms / steps["total"]:.0f}% |')
    print(f"| total | {steps['total']:.3f} | 100% |")


if __name__ == '__main__':
    main()
