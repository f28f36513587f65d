# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Speed, memory and FLOPs of real SelfPatch / DINO pretraining steps.

Runs ``model.train_step`` (data preprocessor -> losses ->
``optim_wrapper.update_params``) plus ``model.update_teacher`` on synthetic
uint8 images shaped like the config's multi-crop pipeline (``DINOMultiCrop``'s
views, or the ``RandomResizedCrop`` ``scale`` of every ``MultiView`` branch
and ``num_views``), so no dataset is needed. See ``docs/benchmarks.md``.

Method:

- seconds/iter: median wall time of ``--iters`` uninstrumented steps after
  ``--warmup`` steps.
- breakdown: ``--iters`` further steps with forward hooks on the student and
  teacher parts, a timed wrapper around the neck's positive matching and
  around the optimizer wrapper's ``backward``/``step``/``zero_grad`` (the
  calls the algorithm makes; nothing is re-implemented). Every timer
  synchronises CUDA first. "aggregation" is the neck minus its positive
  matching; "other" is the rest of the step (preprocessing, concatenations).
- FLOPs: one full step (forward + backward) under
  ``torch.utils.flop_counter.FlopCounterMode``, which counts matmuls
  (mm/addmm/bmm/baddbmm), convolutions and fused attention (SDPA, including
  the CPU flash kernel registered here) at 2 FLOPs per multiply-add.
  Element-wise work (norms, GELU, softmax of the losses, AdamW, EMA) is not
  counted.
- dense matmul rate: a 2048x2048 matmul loop in the step's compute dtype on
  the same device, in the same process; ``flop_rate_fraction`` = achieved
  FLOP rate of the step / that rate.

Example::

    python tools/analysis_tools/benchmark_pretrain.py \
        configs/selfpatch/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py \
        --batch-size 2 --compare
"""
import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from torch.utils import flop_counter

import selfpatch_mm  # noqa: F401  (registers the models)
from selfpatch_mm.datasets import DINOMultiCrop

PARTS = ('student backbone', 'teacher backbone', 'positive matching',
         'aggregation', 'heads', 'losses', 'backward', 'optimizer+EMA',
         'other')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark SelfPatch/DINO pretraining steps on '
        'synthetic multi-crop input.')
    parser.add_argument('config', help='pretraining config file')
    parser.add_argument('--batch-size', type=int, default=2,
                        help='images per step (every view has this batch)')
    parser.add_argument('--iters', type=int, default=5,
                        help='timed iterations (also used for the breakdown)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed iterations first')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: bf16 autocast on the CPU, '
                        'the AMP optimizer wrapper (fp16) on CUDA')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch intra-op threads (default: torch\'s)')
    parser.add_argument('--channels-last', action='store_true',
                        help='channels-last input images')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the student and teacher '
                        'backbones')
    parser.add_argument('--no-patch', action='store_true',
                        help='DINO baseline: patch branch off '
                        '(with_patch_loss=False, patch_head=None)')
    parser.add_argument('--compare', action='store_true',
                        help='benchmark SelfPatch and DINO (each in its own '
                        'process) and print their ratios')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings (key=value)')
    return parser.parse_args(argv)


# --------------------------------------------------------------- input
def _find_multiview(pipeline) -> Optional[dict]:
    for t in pipeline or []:
        if t.get('type') == 'MultiView':
            return t
    return None


def crop_sizes(cfg: Config) -> List[Tuple[int, int]]:
    """``(H, W)`` of every view, in the order the pipeline makes them.

    Raises:
        ValueError: The config has neither a ``DINOMultiCrop`` nor a
            ``MultiView`` transform with a ``RandomResizedCrop`` in each
            branch.
    """
    pipeline = cfg.get('train_dataloader', {}).get('dataset', {}).get(
        'pipeline') or cfg.get('train_pipeline')
    multicrop = next((t for t in pipeline or []
                      if t.get('type') == 'DINOMultiCrop'), None)
    if multicrop is not None:
        return DINOMultiCrop(**{
            k: v
            for k, v in multicrop.items() if k != 'type'
        }).view_sizes
    mv = _find_multiview(pipeline)
    if mv is None:
        raise ValueError(
            'No DINOMultiCrop or MultiView transform in train_dataloader.dataset.pipeline '
            '(or train_pipeline) of the config: cannot infer the crops. The '
            'benchmark needs a multi-crop pretraining config.')
    branches = mv['transforms']
    counts = mv['num_views']
    if isinstance(counts, int):
        counts = [counts] * len(branches)
    if len(counts) != len(branches):
        raise ValueError(f'MultiView num_views={counts} does not match its '
                         f'{len(branches)} transform branches.')
    sizes = []
    for n, branch in zip(counts, branches):
        crop = next((t for t in branch
                     if 'RandomResizedCrop' in str(t.get('type'))), None)
        if crop is None:
            raise ValueError('A MultiView branch has no RandomResizedCrop: '
                             f'{branch!r}. Cannot infer its crop size.')
        scale = crop['scale']
        hw = (scale, scale) if isinstance(scale, int) else tuple(scale)
        sizes += [tuple(int(s) for s in hw)] * int(n)
    return sizes


def synthetic_batch(sizes: List[Tuple[int, int]], batch_size: int,
                    channels_last: bool = False) -> dict:
    """A collated multi-view batch as the dataloader would give it."""
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    views = []
    for h, w in sizes:
        v = torch.randint(0, 256, (batch_size, 3, h, w), generator=g,
                          dtype=torch.uint8)
        if channels_last:
            v = v.contiguous(memory_format=torch.channels_last)
        views.append(v)
    return dict(inputs=views,
                data_samples=[DataSample() for _ in range(batch_size)])


# --------------------------------------------------------------- model
def build(cfg: Config, args: argparse.Namespace):
    """Model (train mode) and optimizer wrapper of the config."""
    from mmpretrain.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    if args.no_patch:
        cfg.model.with_patch_loss = False
        cfg.model.patch_head = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(args.device).train()
    ow_cfg = cfg.optim_wrapper.copy()
    if args.device == 'cuda' and args.amp:
        ow_cfg['type'] = 'SelfPatchAmpOptimWrapper'
    elif str(ow_cfg.get('type', 'OptimWrapper')).startswith('AutoAmp') or \
            'Amp' in str(ow_cfg.get('type', '')):
        # fp32 (CPU bf16 autocast is applied around the step instead).
        ow_cfg['type'] = 'SelfPatchOptimWrapper'
    optim_wrapper = build_optim_wrapper(model, ow_cfg)
    if args.compile:
        model.backbone.compile()
        model.teacher.backbone.compile()
    return model, optim_wrapper


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def train_step(model, optim_wrapper, data: dict, autocast) -> None:
    """One real iteration: what the Runner's loop and TeacherEMAHook do."""
    with autocast():
        model.train_step(data, optim_wrapper)
    model.update_teacher(0.996)


# --------------------------------------------------------------- timers
class Breakdown:
    """Accumulates synchronised wall time of the parts of a step."""

    def __init__(self, model, optim_wrapper, device: str) -> None:
        self.model, self.ow, self.device = model, optim_wrapper, device
        self.totals: Dict[str, float] = defaultdict(float)
        self._handles, self._patched = [], []
        self._starts: Dict[int, float] = {}

    def _now(self) -> float:
        _sync(self.device)
        return time.perf_counter()

    def _hook(self, module: torch.nn.Module, part: str) -> None:

        def pre(mod, args):
            self._starts[id(mod)] = self._now()

        def post(mod, args, out):
            self.totals[part] += self._now() - self._starts.pop(id(mod))

        self._handles += [module.register_forward_pre_hook(pre),
                          module.register_forward_hook(post)]

    def _wrap(self, obj, name: str, part: str) -> None:
        fn = getattr(obj, name)

        def timed(*args, **kwargs):
            t0 = self._now()
            out = fn(*args, **kwargs)
            self.totals[part] += self._now() - t0
            return out

        setattr(obj, name, timed)  # instance attribute shadows the method
        self._patched.append((obj, name))

    def __enter__(self) -> 'Breakdown':
        m = self.model
        self._hook(m.backbone, 'student backbone')
        self._hook(m.teacher.backbone, 'teacher backbone')
        for net in (m, m.teacher):
            neck = net.neck
            self._hook(neck, 'neck')
            self._wrap(neck, 'positives', 'positive matching')
            for name in ('head', 'patch_head'):
                head = getattr(net, name) if net is m else net[name]
                if head is not None:
                    self._hook(head, 'heads')
                    if head.loss_module is not None:
                        self._hook(head.loss_module, 'losses')
        self._wrap(self.ow, 'backward', 'backward')
        self._wrap(self.ow, 'step', 'optimizer+EMA')
        self._wrap(self.ow, 'zero_grad', 'optimizer+EMA')
        self._wrap(m, 'update_teacher', 'optimizer+EMA')
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        for obj, name in self._patched:
            delattr(obj, name)

    def per_iter(self, total: float, iters: int) -> Dict[str, float]:
        """Seconds per iteration of every part of ``PARTS``."""
        t = {k: v / iters for k, v in self.totals.items()}
        t['aggregation'] = t.pop('neck', 0.0) - t.get('positive matching', 0)
        out = {p: t.get(p, 0.0) for p in PARTS[:-1]}
        out['other'] = total / iters - sum(out.values())
        return out


# --------------------------------------------------------------- FLOPs
def _cpu_flash(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query, key, value)


def _cpu_flash_bwd(grad_out, query, key, value, *args, out_shape=None,
                   **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


# torch's counter knows the CUDA attention kernels but not the CPU one.
_CUSTOM_FLOPS = {
    # FlopCounterMode applies shape_wrapper to custom entries itself.
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward:
    _cpu_flash_bwd,
}


def step_flops(model, optim_wrapper, data: dict,
               autocast) -> Tuple[int, Dict[str, int]]:
    """FLOPs of one step (forward + backward) and their split by part."""
    counter = flop_counter.FlopCounterMode(
        display=False, depth=3, custom_mapping=_CUSTOM_FLOPS)
    with counter:
        train_step(model, optim_wrapper, data, autocast)
    by_module = {
        k: sum(v.values())
        for k, v in counter.get_flop_counts().items()
    }
    root = type(model).__name__

    def mod(*names):
        return sum(by_module.get('.'.join((root, ) + n), 0) for n in names)

    split = {
        'student backbone': mod(('backbone', )),
        'teacher backbone': mod(('teacher', 'backbone')),
        'neck': mod(('neck', ), ('teacher', 'neck')),
        'heads': mod(('head', ), ('patch_head', ), ('teacher', 'head'),
                     ('teacher', 'patch_head')),
    }
    return counter.get_total_flops(), split


def matmul_rate(device: str, dtype: torch.dtype, n: int = 2048,
                seconds: float = 1.0) -> float:
    """Dense ``n x n`` matmul FLOP/s of this device in ``dtype``."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while True:
        a @ b
        reps += 1
        if reps % 4 == 0:
            _sync(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
    return 2 * n**3 * reps / elapsed


# --------------------------------------------------------------- main
def benchmark(args: argparse.Namespace) -> dict:
    """Run the benchmark of one model variant and return its record."""
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda, but CUDA is not available.')
    # Quiet the per-parameter notes of the optimizer constructor.
    MMLogger.get_instance('benchmark_pretrain', log_level='ERROR')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    sizes = crop_sizes(cfg)
    model, optim_wrapper = build(cfg, args)
    data = synthetic_batch(sizes, args.batch_size, args.channels_last)
    cpu_amp = args.amp and args.device == 'cpu'
    dtype = torch.bfloat16 if cpu_amp else (
        torch.float16 if args.amp else torch.float32)

    def autocast():
        if cpu_amp:
            return torch.autocast('cpu', dtype=torch.bfloat16)
        return contextlib.nullcontext()

    for _ in range(args.warmup):
        train_step(model, optim_wrapper, data, autocast)
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()

    times = []
    for _ in range(args.iters):
        _sync(args.device)
        t0 = time.perf_counter()
        train_step(model, optim_wrapper, data, autocast)
        _sync(args.device)
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times)

    if args.device == 'cuda':
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        # ru_maxrss is in KiB on Linux: the whole process's peak.
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    with Breakdown(model, optim_wrapper, args.device) as bd:
        _sync(args.device)
        t0 = time.perf_counter()
        for _ in range(args.iters):
            train_step(model, optim_wrapper, data, autocast)
        _sync(args.device)
        total = time.perf_counter() - t0
    breakdown = bd.per_iter(total, args.iters)

    flops, flop_split = step_flops(model, optim_wrapper, data, autocast)
    rate = matmul_rate(args.device, dtype)
    achieved = flops / sec
    n_img = args.batch_size
    return dict(
        config=args.config,
        variant='dino' if not model.with_patch_loss else 'selfpatch',
        device=args.device,
        amp=bool(args.amp),
        threads=torch.get_num_threads(),
        batch_size=n_img,
        crops=[f'{h}x{w}' for h, w in sizes],
        iters=args.iters,
        sec_per_iter=sec,
        images_per_sec=n_img / sec,
        peak_memory_mib=peak_mib,
        peak_memory_kind='cuda_max_allocated'
        if args.device == 'cuda' else 'process_peak_rss',
        breakdown_sec=breakdown,
        breakdown_total_sec=total / args.iters,
        flops_per_iter=flops,
        gflops_per_image=flops / n_img / 1e9,
        flops_split=flop_split,
        achieved_gflops=achieved / 1e9,
        matmul_gflops=rate / 1e9,
        matmul_dtype=str(dtype).replace('torch.', ''),
        flop_rate_fraction=achieved / rate,
        # Other processes share the cores: the figures mean little when
        # this exceeds the thread count.
        load_average_1min=os.getloadavg()[0],
    )


def format_table(r: dict) -> str:
    """Human-readable report of one :func:`benchmark` record."""
    lines = [
        f"{r['variant']} | {r['config']}",
        f"device {r['device']} ({r['threads']} threads), amp={r['amp']}, "
        f"batch {r['batch_size']}, crops {' '.join(r['crops'])}",
        f"{'seconds/iter (median)':<26}{r['sec_per_iter']:>12.4f}",
        f"{'images/s':<26}{r['images_per_sec']:>12.2f}",
        f"{'peak memory (MiB)':<26}{r['peak_memory_mib']:>12.1f}"
        f"  ({r['peak_memory_kind']})",
        f"{'GFLOP/iter (fwd+bwd)':<26}{r['flops_per_iter'] / 1e9:>12.2f}",
        f"{'GFLOP/image':<26}{r['gflops_per_image']:>12.2f}",
        f"{'achieved GFLOP/s':<26}{r['achieved_gflops']:>12.1f}",
        f"{'matmul GFLOP/s (' + r['matmul_dtype'] + ')':<26}"
        f"{r['matmul_gflops']:>12.1f}",
        f"{'fraction of matmul rate':<26}{r['flop_rate_fraction']:>12.1%}",
        f"{'load average (1 min)':<26}{r['load_average_1min']:>12.2f}",
        f"breakdown (instrumented, {r['breakdown_total_sec']:.4f} s/iter):",
    ]
    tot = r['breakdown_total_sec']
    for part, sec in r['breakdown_sec'].items():
        lines.append(f'  {part:<24}{sec:>12.4f}  {sec / tot:>6.1%}')
    lines.append('FLOP split (GFLOP/iter): ' + ', '.join(
        f'{k} {v / 1e9:.2f}' for k, v in r['flops_split'].items()))
    return '\n'.join(lines)


def _run_variant(argv: List[str], no_patch: bool) -> dict:
    """Benchmark one variant in a fresh process (separate peak memory)."""
    cmd = [sys.executable, __file__] + [a for a in argv if a != '--compare']
    if no_patch and '--no-patch' not in cmd:
        cmd.append('--no-patch')
    if not no_patch:
        cmd = [a for a in cmd if a != '--no-patch']
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    *table, record = out.stdout.strip().splitlines()
    print('\n'.join(table) + '\n')
    return json.loads(record)


def compare(argv: List[str]) -> dict:
    """SelfPatch and DINO records and their time and FLOP ratios."""
    sp, dino = _run_variant(argv, False), _run_variant(argv, True)
    time_ratio = sp['sec_per_iter'] / dino['sec_per_iter']
    flop_ratio = sp['flops_per_iter'] / dino['flops_per_iter']
    return dict(
        selfpatch=sp,
        dino=dino,
        time_ratio=time_ratio,
        flop_ratio=flop_ratio,
        time_over_flop_ratio=time_ratio / flop_ratio)


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.compare:
        r = compare(argv)
        print(f"\nSelfPatch / DINO: time ratio {r['time_ratio']:.3f}, FLOP "
              f"ratio {r['flop_ratio']:.3f} (time/FLOP "
              f"{r['time_over_flop_ratio']:.3f})")
    else:
        r = benchmark(args)
        print(format_table(r))
    print(json.dumps(r))


if __name__ == '__main__':
    main()
