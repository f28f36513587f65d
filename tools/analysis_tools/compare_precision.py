# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Does bf16 or fp16 training follow fp32 over a whole run? One command.

Trains the CPU demo config and the study-sized ViT of
``compare_pretraining.py`` (its :class:`PretrainSettings`, on a generated
world of its scenes) with ``tools/train.py`` in fp32, bf16 and fp16
(``--amp-dtype``; CPU autocast, fp16 with its GradScaler), every run from
the same seed, then reports per model and dtype:

- the loss curves (``curves.png``) and the final losses (mean of the last
  epoch's iterations);
- the teacher's distance from the fp32 teacher,
  ``||theta - theta_fp32|| / ||theta_fp32||`` over all teacher weights, at
  every kept checkpoint, next to the distance a second fp32 seed gives
  (``--ref-seed``: how far apart two equally good runs are) and, with
  ``--dtypes ... fp32_perturbed``, that of fp32 with a rounding-size input
  perturbation (how far the training carries a tiny difference);
- weighted k-NN top-1 of the teacher on the study's held-out scenes.

It writes ``summary.json`` and ``summary.md`` to ``--out-dir`` and prints
the table and one JSON line. Finished runs are not repeated.

Example::

    nice -n 10 python tools/analysis_tools/compare_precision.py \\
        --out-dir work_dirs/precision --epochs 30 --jobs 2
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional

# The study's parts are a project of this repository
# (projects/evidence_study), not of the installed package: a checkout.
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)
from projects.evidence_study.evals import ProbeSettings, knn_top1  # noqa
from projects.evidence_study.runs import (PretrainSettings,  # noqa: E402
                                          loop_seconds, make_pretrain_config)
from projects.evidence_study.world import WorldSpec, generate_world  # noqa

# run name -> tools/train.py flags, --cfg-options, threads
_FP32_PROTO = ['model.head.fp32_last_layer=True',
               'model.patch_head.fp32_last_layer=True']
_PERTURBED_MEAN = 'model.data_preprocessor.mean=[123.6751,116.2801,103.5301]'
RUNS = {
    'fp32': ([], [], 1),
    'bf16': (['--amp-dtype', 'bf16'], [], 1),
    'fp16': (['--amp-dtype', 'fp16'], [], 1),
    # bf16 with the prototype layers (DINOHead.fp32_last_layer) in fp32
    'bf16_fp32proto': (['--amp-dtype', 'bf16'], _FP32_PROTO, 1),
    # fp16 whose GradScaler starts at 256 instead of 65536, so that it
    # skips no step at the start
    'fp16_scale256': (['--amp-dtype', 'fp16'],
                      ['optim_wrapper.loss_scale.init_scale=256.0'], 1),
    # fp32 with the normalisation mean moved by 1e-4 (the normalised pixels
    # by about 2e-6): how far a perturbation of rounding size carries a run,
    # the floor of the teacher distance
    'fp32_perturbed': ([], [_PERTURBED_MEAN], 1),
    # fp32 on two threads: other summation orders (slow on a loaded
    # machine: OpenMP waits)
    'fp32_threads2': ([], [], 2),
}
DTYPES = ('fp32', 'bf16', 'fp16')
CONFIGS = osp.join(REPO_ROOT, 'configs', 'selfpatch')
DEMO = osp.join(CONFIGS, 'selfpatch_vit-tiny-p8_1xb8-2e_demo.py')
STUDY_BASE = osp.join(CONFIGS,
                      'selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out-dir', required=True)
    p.add_argument('--models', nargs='+', default=['demo', 'study'],
                   choices=['demo', 'study'])
    p.add_argument('--dtypes', nargs='+', default=list(DTYPES),
                   choices=list(RUNS))
    p.add_argument('--epochs', type=int, default=30)
    p.add_argument('--demo-epochs', type=int,
                   help='epochs of the demo (default: --epochs)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--ref-seed', type=int, default=1,
                   help='seed of the second fp32 run (-1: none)')
    p.add_argument('--num-train', type=int, default=256,
                   help='training scenes of the study model')
    p.add_argument('--num-val', type=int, default=320,
                   help='held-out scenes (k-NN queries)')
    p.add_argument('--jobs', type=int, default=1,
                   help='parallel runs (one thread each; fp32_threads2: two)')
    p.add_argument('--report-only', action='store_true',
                   help='train nothing: summarise the finished runs')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='passed to every tools/train.py run')
    return p.parse_args(argv)


def checkpoint_epochs(epochs: int) -> List[int]:
    """The epochs whose checkpoints are kept (about six per run)."""
    every = max(epochs // 6, 1)
    return sorted({*range(every, epochs + 1, every), epochs})


def keep_checkpoints(cfg, epochs: int) -> None:
    """Save every :func:`checkpoint_epochs` checkpoint, keep them all."""
    cfg.default_hooks.checkpoint.update(interval=max(epochs // 6, 1),
                                        max_keep_ckpts=-1)


def demo_config(path: str, epochs: int, seed: int) -> str:
    """The demo config, its 2-epoch schedule stretched to ``epochs``."""
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO)
    cfg.train_cfg.max_epochs = epochs
    warm, cos, wd = cfg.param_scheduler
    cos.update(T_max=epochs - 1, end=epochs)
    wd.update(T_max=epochs, end=epochs)
    cfg.param_scheduler = [warm, cos, wd]
    cfg.train_dataloader.num_workers = 0
    cfg.randomness = dict(seed=seed, deterministic=False)
    keep_checkpoints(cfg, epochs)
    os.makedirs(osp.dirname(path), exist_ok=True)
    cfg.dump(path)
    return path


def study_config(path: str, epochs: int, seed: int, world: dict) -> str:
    """The study's shrunk SelfPatch config, logging every iteration."""
    from mmengine.config import Config
    make_pretrain_config(STUDY_BASE, path, PretrainSettings(epochs=epochs),
                         osp.join(world['ade'], 'images', 'training'), seed,
                         epochs)
    cfg = Config.fromfile(path)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    keep_checkpoints(cfg, epochs)
    cfg.dump(path)
    return path


def train_command(config: str, work_dir: str, dtype: str,
                  options: List[str]) -> List[str]:
    """``tools/train.py`` for one run."""
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), config,
           '--work-dir', work_dir]
    flags, extra, _ = RUNS[dtype]
    cmd += flags
    if options or extra:
        cmd += ['--cfg-options', *options, *extra]
    return cmd


def run_all(jobs: List[dict], parallel: int) -> None:
    """Run the ``tools/train.py`` commands, ``parallel`` at a time, one
    thread each; a run whose checkpoint exists is skipped."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    todo = [j for j in jobs if not osp.isfile(j['checkpoint'])]
    running: List[tuple] = []
    while todo or running:
        while todo and len(running) < parallel:
            j = todo.pop(0)
            os.makedirs(j['work_dir'], exist_ok=True)
            log = open(osp.join(j['work_dir'], 'train.log'), 'w')
            env['OMP_NUM_THREADS'] = str(RUNS[j['dtype']][2])
            proc = subprocess.Popen(j['cmd'], cwd=REPO_ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
            running.append((proc, log, j, time.perf_counter()))
        time.sleep(2)
        for item in list(running):
            proc, log, j, t0 = item
            if proc.poll() is None:
                continue
            log.close()
            running.remove(item)
            if proc.returncode or not osp.isfile(j['checkpoint']):
                raise RuntimeError(f'{j["name"]} failed ({proc.returncode});'
                                   f' see {log.name}')
            with open(osp.join(j['work_dir'], 'wall.json'), 'w') as f:
                json.dump(dict(wall_s=time.perf_counter() - t0), f)
            print(f'{j["name"]}: done', flush=True)


def run_seconds(work_dir: str) -> float:
    """Wall time of a run: measured by :func:`run_all`, else its training
    loop's from the log (a run started by an earlier call)."""
    path = osp.join(work_dir, 'wall.json')
    if osp.isfile(path):
        with open(path) as f:
            return json.load(f)['wall_s']
    return loop_seconds(osp.join(work_dir, 'train.log')) or float('nan')


def read_curve(work_dir: str) -> List[dict]:
    """Per-iteration training scalars of a run (its newest
    ``vis_data/scalars.json``)."""
    import glob
    found = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    rows = []
    with open(found[-1]) as f:
        for line in f:
            row = json.loads(line) if line.strip() else {}
            if 'loss' in row:
                rows.append(row)
    return rows


def teacher_state(checkpoint: str) -> Dict[str, 'object']:
    """The EMA teacher's floating-point tensors of a checkpoint."""
    import torch
    state = torch.load(checkpoint, map_location='cpu',
                       weights_only=False)['state_dict']
    return {k: v.double() for k, v in state.items()
            if k.startswith('teacher.') and v.is_floating_point()}


def relative_distance(a: dict, b: dict) -> float:
    """``||a - b|| / ||b||`` over all tensors of two state dicts."""
    num = sum(float((a[k] - b[k]).pow(2).sum()) for k in b)
    den = sum(float(b[k].pow(2).sum()) for k in b)
    return (num / den)**0.5


def final_losses(curve: List[dict], iters_per_epoch: int) -> Dict[str, float]:
    """Mean of each loss over the last epoch's iterations."""
    last = curve[-iters_per_epoch:]
    return {k: sum(r[k] for r in last) / len(last)
            for k in ('loss', 'loss_cls', 'loss_patch') if k in last[0]}


def smooth(values: List[float], n: int) -> List[float]:
    """Trailing mean over ``n`` values (one epoch)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v - (values[i - n] if i >= n else 0.0)
        out.append(acc / min(i + 1, n))
    return out


def plot(curves: Dict[str, Dict[str, tuple]],
         distances: Dict[str, Dict[str, Dict[int, float]]],
         path: str) -> None:
    """One figure, a row per model: loss_cls and loss_patch (one-epoch
    trailing mean) and the teacher's distance from the fp32 teacher."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    models = list(curves)
    fig, axes = plt.subplots(len(models), 3, figsize=(15, 3.6 * len(models)),
                             squeeze=False)
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for r, model in enumerate(models):
        for c, (name, (rows, per_epoch)) in enumerate(curves[model].items()):
            # one colour per run in all three panels
            style = dict(label=name, lw=1.0, color=colours[c % len(colours)],
                         ls='--' if 'seed' in name else '-')
            for col, key in enumerate(('loss_cls', 'loss_patch')):
                axes[r][col].plot([row['iter'] for row in rows],
                                  smooth([row[key] for row in rows],
                                         per_epoch), **style)
            dist = distances[model].get(name, {})
            if dist and any(dist.values()):
                axes[r][2].plot(list(dist), list(dist.values()),
                                marker='o', **style)
        for c, (title, xlabel) in enumerate(
                (('loss_cls', 'iteration'), ('loss_patch', 'iteration'),
                 ('teacher distance from fp32', 'epoch'))):
            axes[r][c].set_title(f'{model}: {title}')
            axes[r][c].set_xlabel(xlabel)
            axes[r][c].legend(fontsize=8)
        axes[r][2].set_yscale('log')
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv: Optional[List[str]] = None) -> dict:
    """Run (or resume) the comparison; returns the summary."""
    import torch
    torch.set_num_threads(1)
    args = parse_args(argv)
    out = osp.abspath(args.out_dir)
    world = generate_world(
        osp.join(out, 'world'),
        WorldSpec(num_train=args.num_train, num_val=args.num_val,
                  num_clips=1, clip_len=2))
    runs = [(d, args.seed) for d in args.dtypes]
    if args.ref_seed >= 0:
        runs.append(('fp32', args.ref_seed))
    jobs = []
    for model in args.models:
        epochs = (args.demo_epochs or args.epochs) if model == 'demo' \
            else args.epochs
        for dtype, seed in runs:
            name = f'{model}/{dtype}_seed{seed}'
            work_dir = osp.join(out, model, f'{dtype}_seed{seed}')
            cfg_path = osp.join(out, model, f'seed{seed}.py')
            if model == 'demo':
                config = demo_config(cfg_path, epochs, seed)
            else:
                config = study_config(cfg_path, epochs, seed, world)
            jobs.append(dict(
                name=name, model=model, dtype=dtype, seed=seed,
                config=config, work_dir=work_dir, epochs=epochs,
                checkpoint=osp.join(work_dir, f'epoch_{epochs}.pth'),
                cmd=train_command(config, work_dir, dtype,
                                  args.cfg_options)))
    t0 = time.perf_counter()
    if args.report_only:
        jobs = [j for j in jobs if osp.isfile(j['checkpoint'])]
    else:
        run_all(jobs, args.jobs)
    rows, curves, distances = [], {}, {}
    probe = ProbeSettings()
    for model in args.models:
        mine = [j for j in jobs if j['model'] == model]
        ref = next(j for j in mine
                   if j['dtype'] == 'fp32' and j['seed'] == args.seed)
        epochs_kept = checkpoint_epochs(ref['epochs'])
        ref_teachers = {
            e: teacher_state(osp.join(ref['work_dir'], f'epoch_{e}.pth'))
            for e in epochs_kept}
        ref_teacher = ref_teachers[ref['epochs']]
        curves[model], distances[model] = {}, {}
        for j in mine:
            curve = read_curve(j['work_dir'])
            per_epoch = max(r['iter'] for r in curve) // j['epochs']
            label = j['dtype'] if j['seed'] == args.seed else \
                f'{j["dtype"]} seed {j["seed"]}'
            curves[model][label] = (curve, per_epoch)
            distances[model][label] = {
                e: relative_distance(teacher_state(
                    osp.join(j['work_dir'], f'epoch_{e}.pth')),
                    ref_teachers[e]) for e in epochs_kept}
            wall = run_seconds(j['work_dir'])
            rows.append(dict(
                model=model, run=label, epochs=j['epochs'],
                iters=max(r['iter'] for r in curve), wall_s=round(wall, 1),
                **{k: round(v, 5) for k, v in
                   final_losses(curve, per_epoch).items()},
                amp_skipped_steps=curve[-1].get('amp_skipped_steps', 0),
                teacher_dist=relative_distance(
                    teacher_state(j['checkpoint']), ref_teacher),
                knn_top1=knn_top1(j['config'], j['checkpoint'], world,
                                  probe)))
    plot(curves, distances, osp.join(out, 'curves.png'))
    summary = dict(rows=rows, teacher_dist_by_epoch=distances,
                   seed=args.seed, ref_seed=args.ref_seed,
                   num_train=args.num_train, num_val=args.num_val,
                   wall_s=time.perf_counter() - t0,
                   torch=torch.__version__)
    keys = ['model', 'run', 'epochs', 'iters', 'loss_cls', 'loss_patch',
            'teacher_dist', 'knn_top1', 'amp_skipped_steps', 'wall_s']
    lines = ['| ' + ' | '.join(keys) + ' |',
             '|' + ' --- |' * len(keys)]
    for r in rows:
        lines.append('| ' + ' | '.join(
            f'{r[k]:.2e}' if k == 'teacher_dist' else str(r.get(k, '-'))
            for k in keys) + ' |')
    table = '\n'.join(lines)
    with open(osp.join(out, 'summary.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print(table)
    print(json.dumps(summary, separators=(',', ':')))
    return summary


if __name__ == '__main__':
    main()
