# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Does SelfPatch beat DINO, measured by this package? One command.

1. generates a structured image world (object classes with their own shape
   and texture statistics on textured backgrounds; ADE20K-layout masks,
   DAVIS-layout clips, ImageNet-style k-NN folders), deterministic from
   ``--world-seed``;
2. pretrains every arm with ``tools/train.py`` (SelfPatch, DINO with its own
   [CLS] token when its config exists, the no-patch-loss ablation, DINO
   given SelfPatch's wall time, random init), same backbone, crops, batch,
   optimizer steps and schedule, several seeds;
3. evaluates each checkpoint frozen on held-out scenes: linear-probe mIoU
   (the linear ADE20K probe config through ``tools/train.py``), DAVIS J&F
   by label propagation, weighted k-NN top-1;
4. writes ``summary.json``, ``summary.md`` and ``summary.png`` (mean ± std
   over seeds; SelfPatch minus each DINO arm, paired over seeds, with a 95%
   t interval) to ``--out-dir``.

Re-running with the same ``--out-dir`` skips the finished runs.

Example::

    python tools/analysis_tools/compare_pretraining.py \\
        --out-dir work_dirs/study
    python tools/analysis_tools/compare_pretraining.py --quick --out-dir /tmp/q
"""
import argparse
import json
import os.path as osp
import shlex
import sys
from typing import List, Optional

# The study is a project of this repository (projects/evidence_study), not
# part of the installed package: it runs from a checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from projects.evidence_study.runs import Arm, default_arms  # noqa: E402
from projects.evidence_study.study import (full_settings,  # noqa: E402
                                           quick_settings, run_study)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='SelfPatch vs DINO vs random init on a generated world')
    parser.add_argument('--out-dir',
                        help='world, runs and the summary files (required '
                        'unless --list-arms)')
    parser.add_argument('--quick', action='store_true',
                        help='one seed, tiny sizes (a smoke test)')
    parser.add_argument('--seeds', type=int, nargs='+',
                        help='seeds per arm (default: 0 1 2; quick: 0)')
    parser.add_argument('--world-seed', type=int, default=0)
    parser.add_argument(
        '--arms', nargs='+',
        help='arm names to run (default: all of --list-arms)')
    parser.add_argument(
        '--add-arm', nargs=2, action='append', default=[],
        metavar=('NAME', 'CONFIG'),
        help='an extra arm from any pretraining config')
    parser.add_argument('--epochs', type=int,
                        help='pretraining epochs of every arm')
    parser.add_argument('--probe-iters', type=int,
                        help='linear-probe training iterations')
    parser.add_argument(
        '--equal-wall-base', nargs='+',
        help="the DINO arm(s) given SelfPatch's wall time (default: 'dino' "
        "when its config exists, else 'dino_no_patch_loss')")
    parser.add_argument('--list-arms', action='store_true',
                        help='print the arms and exit')
    args = parser.parse_args(argv)
    if not (args.out_dir or args.list_arms):
        parser.error('--out-dir is required.')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the study; returns the ``summary.json`` content."""
    args = parse_args(argv)
    arms = default_arms(args.equal_wall_base) + [
        Arm(n, c) for n, c in args.add_arm
    ]
    if args.arms:
        unknown = set(args.arms) - {a.name for a in arms}
        if unknown:
            raise SystemExit(f'Unknown arms {sorted(unknown)}; known: '
                             f'{[a.name for a in arms]}')
        arms = [a for a in arms if a.name in args.arms]
    if args.list_arms:
        for a in arms:
            print(f'{a.name}: {a.config or "(random init)"}'
                  + (f' (wall time of {a.equal_wall_of})'
                     if a.equal_wall_of else ''))
        return {}
    settings = quick_settings() if args.quick else full_settings()
    settings.world.seed = args.world_seed
    if args.seeds:
        settings.seeds = list(args.seeds)
    if args.epochs:
        settings.pretrain.epochs = args.epochs
    if args.probe_iters:
        settings.probe.iters = args.probe_iters
    command = ' '.join(
        shlex.quote(a) for a in ['python', sys.argv[0]] +
        list(sys.argv[1:] if argv is None else argv))
    summary = run_study(settings, arms, args.out_dir, command)
    with open(f'{args.out_dir}/summary.md') as f:
        print(f.read())
    print(json.dumps(summary['differences'], indent=1))
    return summary


if __name__ == '__main__':
    main()
