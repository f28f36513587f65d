# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Plot the training curves of a work dir to one PNG: by default
``loss_cls``, ``loss_patch``, the learning rate, the teacher momentum and
the teacher temperature in the first column, and beside them a column per
head of its health figures (``health/cls_*``, ``health/patch_*``: teacher
entropy fraction, batch perplexity on a log scale, student-teacher KL,
centre norm, feature std; see docs/health.md), one panel each (own y
scale) over iterations.

The curves come from mmengine's ``LocalVisBackend`` files,
``<work_dir>/<timestamp>/vis_data/scalars.json``. A resumed run writes a
new timestamp folder; all of them are read in order and a later run's
value of an iteration replaces an earlier one, so the curves run through
the resumes.

mmpretrain's ``analyze_logs.py plot_curve`` reads these files too, but
draws every key on one shared axis, where the learning rate (~1e-3), the
momentum (~1) and the temperature (~0.04) are flat lines next to the loss.

Several work dirs are drawn into the same panels, one line each (a run
beside known-good and known-collapsed references, e.g. those of
docs/health.md).

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

HEALTH_FIGURES = {
    'entropy_frac': 'teacher entropy / log K',
    'perplexity': 'prototypes in use (batch perplexity)',
    'kl': 'KL(teacher | student)',
    'center_norm': 'centre norm',
    'feat_std': 'feature std (normalised)',
}
HEADS = {'cls': '[CLS] head', 'patch': 'patch head'}
HEALTH_KEYS = tuple(f'health/{head}_{figure}' for head in HEADS
                    for figure in HEALTH_FIGURES)
DEFAULT_KEYS = ('loss_cls', 'loss_patch', 'lr', 'teacher_momentum',
                'teacher_temp') + HEALTH_KEYS
TITLES = {
    'loss_cls': 'loss_cls (DINO, [CLS])',
    'loss_patch': 'loss_patch (SelfPatch, x lambda)',
    'lr': 'learning rate',
    'teacher_momentum': 'teacher EMA momentum',
    'teacher_temp': 'teacher temperature',
    **{f'health/{head}_{figure}': f'{name}: {title}'
       for head, name in HEADS.items()
       for figure, title in HEALTH_FIGURES.items()},
}


def columns(keys: List[str]) -> List[List[str]]:
    """``keys`` in columns: everything but the health figures, then one
    column per head (empty columns dropped)."""
    cols = [[k for k in keys if not k.startswith('health/')]] + [
        [k for k in keys if k.startswith(f'health/{head}_')]
        for head in HEADS
    ]
    rest = [k for k in keys if k.startswith('health/') and
            not any(k in c for c in cols)]
    return [c for c in cols + [rest] if c]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Plot training curves from vis_data/scalars.json')
    parser.add_argument(
        'paths',
        nargs='+',
        metavar='path',
        help='work dirs (all their */vis_data/scalars.json) or '
        'scalars.json files; several are drawn one line each')
    parser.add_argument(
        '--labels', nargs='+', default=None,
        help='legend names of the paths (default: their folder names)')
    parser.add_argument(
        '--keys',
        nargs='+',
        default=list(DEFAULT_KEYS),
        help='scalars to plot, one panel each (default: %(default)s)')
    parser.add_argument(
        '--out', default=None,
        help='PNG path (default: curves.png in the first path)')
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


def plot_curves(runs: Dict[str, Dict[str, Dict[int, float]]],
                keys: List[str], out: str, title: str = '') -> List[str]:
    """Draw one panel per key logged by any run and save a PNG.

    Args:
        runs (dict): Label to the run's curves (:func:`load_scalars`); with
            several runs every panel has a line per run and a legend.
        keys (list[str]): Scalars to draw, in order.
        out (str): PNG path.
        title (str): Figure title.

    Returns:
        list[str]: The keys that were drawn.

    Raises:
        KeyError: If none of ``keys`` was logged.
    """
    import matplotlib
    matplotlib.use('Agg')  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter
    drawn = [k for k in keys if any(k in c for c in runs.values())]
    if not drawn:
        logged = sorted({k for c in runs.values() for k in c})
        raise KeyError(f'None of {keys} was logged; the logged scalars are '
                       f'{logged}.')
    cols = columns(drawn)
    rows = max(len(c) for c in cols)
    fig, axes = plt.subplots(
        rows, len(cols), figsize=(8 if len(cols) == 1 else 5.5 * len(cols),
                                  2.2 * rows),
        sharex=True, squeeze=False)
    for j, col in enumerate(cols):
        for ax in axes[len(col):, j]:
            ax.set_visible(False)
        axes[len(col) - 1, j].xaxis.set_tick_params(labelbottom=True)
        axes[len(col) - 1, j].set_xlabel('iteration')
    for ax, key in ((axes[i, j], k) for j, col in enumerate(cols)
                    for i, k in enumerate(col)):
        for label, curves in runs.items():
            steps = sorted(curves.get(key, {}))
            ax.plot(steps, [curves[key][s] for s in steps], linewidth=1.2,
                    marker='.' if len(steps) < 50 else None, label=label)
        if len(runs) > 1:
            ax.legend(fontsize=7)
        ax.set_title(TITLES.get(key, key), fontsize=10, loc='left')
        ax.grid(alpha=0.3)
        # No offset ("+9.99e-1") labels: momenta near 1 and learning rates
        # near 1e-4 read directly off the ticks.
        if key.endswith('_perplexity'):
            ax.set_yscale('log')  # from 1 (one prototype) to K (uniform)
        ax.yaxis.set_major_formatter(
            FormatStrFormatter('%.1e' if key == 'lr' else '%.4g'))
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
    labels = args.labels or [
        osp.basename(osp.abspath(p if osp.isdir(p) else osp.dirname(p)))
        for p in args.paths
    ]
    if len(labels) != len(args.paths):
        raise ValueError(f'{len(args.paths)} paths, {len(labels)} labels.')
    files = {label: find_scalar_files(p)
             for label, p in zip(labels, args.paths)}
    first = args.paths[0]
    out = args.out or osp.join(
        first if osp.isdir(first) else osp.dirname(first), 'curves.png')
    drawn = plot_curves(
        {label: load_scalars(f) for label, f in files.items()}, args.keys,
        out, labels[0] if len(labels) == 1 else '')
    missing = [k for k in args.keys if k not in drawn]
    if missing:
        print(f'Not logged, skipped: {", ".join(missing)}')
    print(f'Plotted {", ".join(drawn)} from '
          f'{sum(map(len, files.values()))} file(s) to {out}')
    return out


if __name__ == '__main__':
    main()
