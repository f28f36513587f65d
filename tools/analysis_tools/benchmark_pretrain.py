# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Speed, memory and FLOPs of real SelfPatch / DINO pretraining steps.

Runs ``model.train_step`` (data preprocessor -> losses under the optimizer
wrapper's autocast -> ``optim_wrapper.update_params``) plus
``model.update_teacher`` on synthetic uint8 images shaped like the config's
multi-crop pipeline, so no dataset is needed. See ``docs/benchmarks.md``.

Method:

- seconds/iter: median wall time of ``--iters`` uninstrumented steps after
  ``--warmup`` steps; images/s = batch / that.
- peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, the process's
  peak RSS on the CPU.
- breakdown: ``--iters`` further steps with forward hooks on the student and
  teacher parts and timed wrappers around the positive matching and the
  wrapper's ``backward``/``step``/``zero_grad``. Every timer synchronises
  CUDA first.
- FLOPs: one full step under ``torch.utils.flop_counter.FlopCounterMode``
  (matmuls, convolutions, fused attention; element-wise work not counted).
- dense matmul rate: a 2048x2048 matmul loop in the step's compute dtype
  (fp16/bf16 under AMP) on the same device, in the same process;
  ``flop_rate_fraction`` = achieved FLOP rate of the step / that rate.
- ``--official``: the official code structure on the same weights
  (``tests/reference/official_step.py``), SelfPatch only.
- ``--health-cost``: what the logged health figures cost, two ways in
  the same process: the synchronised time of their own functions inside
  real steps (``record_health`` of both losses, ``health_figures``) over
  the step's time, and the median step with the figures on against off,
  interleaved (on-off, off-on, ...) so a shared machine's drift hits both.
- ``--sweep``: every combination of ``--batch-sizes``, variant (SelfPatch,
  DINO, official-shaped) and the listed switches, each in a fresh process,
  as one table; an out-of-memory run is a row, not a failure.

Examples::

    python tools/analysis_tools/benchmark_pretrain.py \
        configs/selfpatch/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py \
        --batch-size 2 --compare
    python tools/analysis_tools/benchmark_pretrain.py CONFIG --device cuda \
        --amp bf16 --sweep --batch-sizes 32 64 128 --with-official
"""
import argparse
import itertools
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time
from typing import List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger

import selfpatch_mm.datasets  # noqa: F401  (registers our modules)
import selfpatch_mm.engine  # noqa: F401
import selfpatch_mm.models  # noqa: F401

# The benchmark's parts sit next to it (pretrain_benchmark/); the official
# step it times is the tests' reference transcription (tests/reference).
_HERE = osp.dirname(osp.abspath(__file__))
sys.path[:0] = [_HERE, osp.join(osp.dirname(osp.dirname(_HERE)), 'tests')]
from pretrain_benchmark import (Breakdown, build_step,  # noqa: E402
                                compile_first_step, crop_sizes,
                                eager_vs_compiled, format_sweep, format_table,
                                matmul_rate, step_flops, sync,
                                synthetic_batch, train_step)
from reference.official_step import official_train_step  # noqa: E402

AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}

# On/off switches of the command line: (flag, help).
SWITCHES = (
    ('--fused-adamw', 'AdamW(fused=True) instead of the default'),
    ('--no-sdpa', 'plain-ops attention in the backbone (as the official '
     'timm code) instead of SDPA kernels'),
    ('--official', 'time the official code structure on the same weights '
     '(SelfPatch only)'),
    ('--channels-last', 'channels-last input images'),
    ('--compile', 'torch.compile the student and teacher parts as '
     'tools/train.py --compile does (one untimed first step compiles; its '
     'time is reported apart)'),
    ('--compile-losses', '--compile: the loss modules too'),
    ('--no-patch', 'DINO ablation: patch branch off (with_patch_loss=False, '
     'patch_head=None)'),
    ('--no-breakdown', 'skip the instrumented breakdown and FLOPs'),
    ('--health-cost', 'time the health figures (their own functions, and '
     'steps with them on and off, interleaved)'),
    ('--compare', 'benchmark SelfPatch and DINO (each in its own process) '
     'and print their ratios'),
    ('--sweep', 'one process per combination of --batch-sizes, variants and '
     '--sweep-switches; one table'),
    ('--with-official', '--sweep: add the official-shaped step'),
)


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
    parser.add_argument(
        '--amp', nargs='?', const='auto', choices=['auto', 'fp16', 'bf16'],
        help='mixed precision through SelfPatchAmpOptimWrapper: fp16 (with '
        'a GradScaler) or bf16; bare --amp is fp16 on CUDA, bf16 on the CPU')
    for flag, text in SWITCHES:
        parser.add_argument(flag, action='store_true', help=text)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch intra-op threads (default: torch\'s)')
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=None,
                        help='batch sizes of --sweep')
    parser.add_argument('--sweep-switches', nargs='*', default=[],
                        choices=['fused-adamw', 'no-sdpa', 'compile'],
                        help='--sweep: also run SelfPatch at the largest '
                        'batch with each switch on its own: what it buys')
    parser.add_argument('--json-out', help='also write the record here')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings (key=value)')
    args = parser.parse_args(argv)
    if args.amp == 'auto':
        args.amp = 'fp16' if args.device == 'cuda' else 'bf16'
    return args


def _timed_steps(step, model, optim_wrapper, data, iters, device) -> list:
    times = []
    for _ in range(iters):
        sync(device)
        t0 = time.perf_counter()
        step(model, optim_wrapper, data)
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def health_cost(step, model, optim_wrapper, data, iters, device) -> dict:
    """Seconds per step of the health figures, and steps with them on and
    off (see the module docstring)."""
    spent = [0.0]
    timed = [model] + [getattr(model, h).loss_module
                       for h in ('head', 'patch_head')
                       if getattr(model, h, None) is not None]
    for obj in timed:
        name = 'health_figures' if obj is model else 'record_health'
        fn = getattr(obj, name)

        def wrapper(*a, _fn=fn, **kw):
            sync(device)
            t0 = time.perf_counter()
            out = _fn(*a, **kw)
            sync(device)
            spent[0] += time.perf_counter() - t0
            return out

        setattr(obj, name, wrapper)  # an instance attribute: undone below
    times = {True: [], False: []}
    try:
        for i in range(iters):
            for on in ((True, False) if i % 2 == 0 else (False, True)):
                model.set_log_health(on)
                times[on] += _timed_steps(step, model, optim_wrapper, data,
                                          1, device)
    finally:
        model.set_log_health(True)
        for obj in timed:
            delattr(obj,
                    'health_figures' if obj is model else 'record_health')
    on, off = (statistics.median(times[k]) for k in (True, False))
    own = spent[0] / iters  # only the steps with the figures on count
    return dict(health_sec_per_iter=own, health_fraction=own / on,
                sec_per_iter_health_on=on, sec_per_iter_health_off=off,
                health_on_over_off=on / off)


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
    # The official code's timm attention is plain ops.
    args.no_sdpa = args.no_sdpa or args.official
    model, optim_wrapper = build_step(
        cfg, args.device, args.amp, args.no_patch, args.fused_adamw,
        not args.no_sdpa, args.compile, args.compile_losses)
    data = synthetic_batch(sizes, args.batch_size, args.channels_last)
    step = official_train_step if args.official else train_step
    compiled = compile_first_step(step, model, optim_wrapper, data,
                                  args.device) if args.compile else {}

    for _ in range(args.warmup):
        step(model, optim_wrapper, data)
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    sec = statistics.median(
        _timed_steps(step, model, optim_wrapper, data, args.iters,
                     args.device))
    if args.device == 'cuda':
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        # ru_maxrss is in KiB on Linux: the whole process's peak.
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    if args.compile:
        compiled.update(eager_vs_compiled(step, model, optim_wrapper, data,
                                          args.iters, args.device))
    health = None
    if args.health_cost:
        if args.official:
            raise SystemExit('--health-cost times our step, not --official.')
        health = health_cost(step, model, optim_wrapper, data, args.iters,
                             args.device)

    breakdown, total, flops, flop_split = None, None, None, None
    if not args.no_breakdown:
        # Timing hooks inside compiled parts would be traced into their
        # graphs: a compiled step has no breakdown, and its FLOPs are
        # counted on the same step run eagerly (the same matmuls).
        if not args.official and not args.compile:
            with Breakdown(model, optim_wrapper, args.device) as bd:
                total = sum(
                    _timed_steps(step, model, optim_wrapper, data,
                                 args.iters, args.device))
            breakdown = bd.per_iter(total, args.iters)
            total /= args.iters
        with torch.compiler.set_stance(
                'force_eager' if args.compile else 'default'):
            flops, flop_split = step_flops(model, optim_wrapper, data, step)
        if args.official:  # its parts are called outside the model
            flop_split = None
    dtype = AMP_DTYPES[args.amp] if args.amp else torch.float32
    rate = matmul_rate(args.device, dtype)
    record = dict(
        config=args.config,
        variant=('selfpatch' if getattr(model, 'with_patch_loss', False)
                 else 'dino'),
        official=bool(args.official),
        device=args.device,
        gpu=torch.cuda.get_device_name() if args.device == 'cuda' else None,
        amp=args.amp or 'fp32',
        fused_adamw=bool(args.fused_adamw),
        sdpa=not args.no_sdpa,
        # activation checkpointing: --cfg-options model.backbone.with_cp=True
        with_cp=bool(cfg.model.backbone.get('with_cp', False)),
        compile=bool(args.compile),
        compile_losses=bool(args.compile and args.compile_losses),
        threads=torch.get_num_threads(),
        batch_size=args.batch_size,
        crops=[f'{h}x{w}' for h, w in sizes],
        iters=args.iters,
        sec_per_iter=sec,
        images_per_sec=args.batch_size / sec,
        peak_memory_mib=peak_mib,
        peak_memory_kind='cuda_max_allocated'
        if args.device == 'cuda' else 'process_peak_rss',
        breakdown_sec=breakdown,
        breakdown_total_sec=total,
        flops_per_iter=flops,
        gflops_per_image=flops / args.batch_size / 1e9 if flops else None,
        flops_split=flop_split,
        matmul_gflops=rate / 1e9,
        matmul_dtype=str(dtype).replace('torch.', ''),
        # Other processes share the cores: the figures mean little when
        # this exceeds the thread count.
        load_average_1min=os.getloadavg()[0],
    )
    if compiled:
        # what the compile added to the first step
        compiled['compile_sec'] = compiled['compile_first_iter_sec'] - sec
    record.update(compiled)
    if health:
        record.update(health)
    if flops:
        record.update(achieved_gflops=flops / sec / 1e9,
                      flop_rate_fraction=flops / sec / rate)
    return record


def _run(argv: List[str], add=()) -> dict:
    """One benchmark in a fresh process (its own peak memory); a failure
    such as CUDA out-of-memory becomes a record with ``error``."""
    cmd = [sys.executable, __file__, *argv, *add]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        lines = (out.stderr or out.stdout).strip().splitlines()
        return dict(error=(lines or ['failed'])[-1][:120], cmd=cmd[2:])
    *table, record = out.stdout.strip().splitlines()
    print('\n'.join(table) + '\n', flush=True)
    return json.loads(record)


# Options of the parent run that its child runs must not inherit, with
# how many values each takes ('+': until the next option).
_PARENT_ONLY = {'--compare': 0, '--sweep': 0, '--with-official': 0,
                '--no-patch': 0, '--official': 0, '--json-out': 1,
                '--batch-sizes': '+', '--sweep-switches': '+'}


def _strip(argv: List[str], extra: dict = None) -> List[str]:
    """``argv`` without the parent-only options and their values."""
    drop = dict(_PARENT_ONLY, **(extra or {}))
    out, i = [], 0
    while i < len(argv):
        n = drop.get(argv[i])
        if n is None:
            out.append(argv[i])
            i += 1
        elif n == '+':
            i += 1
            while i < len(argv) and not argv[i].startswith('--'):
                i += 1
        else:
            i += 1 + n
    return out


def compare(argv: List[str]) -> dict:
    """SelfPatch and DINO records and their time and FLOP ratios."""
    base = _strip(argv)
    sp, dino = _run(base), _run(base, add=['--no-patch'])
    time_ratio = sp['sec_per_iter'] / dino['sec_per_iter']
    flop_ratio = sp['flops_per_iter'] / dino['flops_per_iter']
    return dict(
        selfpatch=sp,
        dino=dino,
        time_ratio=time_ratio,
        flop_ratio=flop_ratio,
        time_over_flop_ratio=time_ratio / flop_ratio)


def sweep(args: argparse.Namespace, argv: List[str]) -> dict:
    """Records of every batch size x variant, and of each switch at the
    largest batch, each run in its own process."""
    base = _strip(argv, {'--batch-size': 1})
    batches = args.batch_sizes or [args.batch_size]
    variants = [[], ['--no-patch']] + ([['--official']]
                                       if args.with_official else [])
    runs = list(itertools.product(batches, variants))
    runs += [(max(batches), [f'--{s}']) for s in args.sweep_switches]
    records = []
    for bs, extra in runs:
        records.append(_run(base, add=['--batch-size', str(bs), *extra]))
        records[-1].setdefault('batch_size', bs)
    return dict(sweep=records)


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.sweep:
        r = sweep(args, argv)
        print(format_sweep(r['sweep']))
    elif args.compare:
        r = compare(argv)
        print(f"\nSelfPatch / DINO: time ratio {r['time_ratio']:.3f}, FLOP "
              f"ratio {r['flop_ratio']:.3f} (time/FLOP "
              f"{r['time_over_flop_ratio']:.3f})")
    else:
        r = benchmark(args)
        print(format_table(r))
    if args.json_out:
        with open(args.json_out, 'w') as f:
            json.dump(r, f, indent=1)
    print(json.dumps(r))


if __name__ == '__main__':
    main()
