# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Plot the training curves of a work dir to one PNG: by default
``loss_cls``, ``loss_patch``, the learning rate, the teacher momentum and
the teacher temperature, one panel each (own y scale) over iterations.

The curves come from mmengine's ``LocalVisBackend`` files,
``<work_dir>/<timestamp>/vis_data/scalars.json``. A resumed run writes a
new timestamp folder; all of them are read in order and a later run's
value of an iteration replaces an earlier one, so the curves run through
the resumes.

mmpretrain's ``analyze_logs.py plot_curve`` reads these files too, but
draws every key on one shared axis, where the learning rate (~1e-3), the
momentum (~1) and the temperature (~0.04) are flat lines next to the loss.

Example::

    python tools/analysis_tools/plot_curves.py \\
        work_dirs/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k \\
        --out work_dirs/curves.png
"""
import argparse
import json
import os.path as osp
from glob import glob
from typing import Dict, List, Optional

DEFAULT_KEYS = ('loss_cls', 'loss_patch', 'lr', 'teacher_momentum',
                'teacher_temp')
TITLES = {
    'loss_cls': 'loss_cls (DINO, [CLS])',
    'loss_patch': 'loss_patch (SelfPatch, x lambda)',
    'lr': 'learning rate',
    'teacher_momentum': 'teacher EMA momentum',
    'teacher_temp': 'teacher temperature',
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Plot training curves from vis_data/scalars.json')
    parser.add_argument(
        'path',
        help='a work dir (all its */vis_data/scalars.json) or one '
        'scalars.json file')
    parser.add_argument(
        '--keys',
        nargs='+',
        default=list(DEFAULT_KEYS),
        help='scalars to plot, one panel each (default: %(default)s)')
    parser.add_argument(
        '--out', default=None, help='PNG path (default: <path>/curves.png)')
    return parser.parse_args(argv)


def find_scalar_files(path: str) -> List[str]:
    """The ``scalars.json`` files of a work dir, oldest run first.

    Raises:
        FileNotFoundError: If there is none.
    """
    if osp.isfile(path):
        return [path]
    # Timestamp folder names (YYYYmmdd_HHMMSS) sort chronologically.
    files = sorted(glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(
            f'No */vis_data/scalars.json under {path}: pass a work dir of '
            'tools/train.py (with the default LocalVisBackend) or the file.')
    return files


def load_scalars(files: List[str]) -> Dict[str, Dict[int, float]]:
    """Key to ``{iteration: value}`` over all files; later files win.

    Lines without a ``step`` (e.g. validation summaries of other tools)
    are skipped.
    """
    curves: Dict[str, Dict[int, float]] = {}
    for path in files:
        with open(path, encoding='utf-8') as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                record = json.loads(line)
                step = record.get('step')
                if step is None:
                    continue
                for key, value in record.items():
                    if isinstance(value, (int, float)) and key not in (
                            'step', 'epoch', 'iter'):
                        curves.setdefault(key, {})[int(step)] = float(value)
    return curves


def plot_curves(curves: Dict[str, Dict[int, float]], keys: List[str],
                out: str, title: str = '') -> List[str]:
    """Draw one panel per key present in ``curves`` and save a PNG.

    Returns:
        list[str]: The keys that were drawn.

    Raises:
        KeyError: If none of ``keys`` is in ``curves``.
    """
    import matplotlib
    matplotlib.use('Agg')  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter
    drawn = [k for k in keys if k in curves]
    if not drawn:
        raise KeyError(f'None of {keys} was logged; the logged scalars are '
                       f'{sorted(curves)}.')
    fig, axes = plt.subplots(
        len(drawn), 1, figsize=(8, 2.2 * len(drawn)), sharex=True,
        squeeze=False)
    for ax, key in zip(axes[:, 0], drawn):
        steps = sorted(curves[key])
        ax.plot(steps, [curves[key][s] for s in steps], linewidth=1.2,
                marker='.' if len(steps) < 50 else None)
        ax.set_title(TITLES.get(key, key), fontsize=10, loc='left')
        ax.grid(alpha=0.3)
        # No offset ("+9.99e-1") labels: momenta near 1 and learning rates
        # near 1e-4 read directly off the ticks.
        ax.yaxis.set_major_formatter(
            FormatStrFormatter('%.1e' if key == 'lr' else '%.4g'))
    axes[-1, 0].set_xlabel('iteration')
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return drawn


def main(argv: Optional[List[str]] = None) -> str:
    """Plot and report the PNG path.

    Returns:
        str: The written PNG.
    """
    args = parse_args(argv)
    files = find_scalar_files(args.path)
    curves = load_scalars(files)
    out = args.out or osp.join(
        args.path if osp.isdir(args.path) else osp.dirname(args.path),
        'curves.png')
    drawn = plot_curves(curves, args.keys, out,
                        osp.basename(osp.abspath(args.path)))
    missing = [k for k in args.keys if k not in drawn]
    if missing:
        print(f'Not logged, skipped: {", ".join(missing)}')
    print(f'Plotted {", ".join(drawn)} from {len(files)} file(s) to {out}')
    return out


if __name__ == '__main__':
    main()
