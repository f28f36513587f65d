# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Summary of the study: mean ± std over seeds, paired differences with a
t-based 95% interval, written as JSON, Markdown and one PNG."""
import json
import math
import os.path as osp
from typing import Dict, List, Optional

import numpy as np

__all__ = ['METRICS', 'paired_difference', 'summarize', 'write_report']

#: metric key -> label (all in percent, higher is better)
METRICS = {
    'probe_miou': 'linear-probe mIoU',
    'davis_jf': 'DAVIS J&F',
    'knn_top1': 'k-NN top-1',
}


def _t975(df: int) -> float:
    """Two-sided 95% quantile of Student's t with ``df`` degrees."""
    try:
        from scipy.stats import t
        return float(t.ppf(0.975, df))
    except ImportError:  # the few values a study with <= 10 seeds needs
        table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                 2.262]
        return table[df - 1] if df <= len(table) else 1.96


def paired_difference(a: Dict[int, float],
                      b: Dict[int, float]) -> Optional[dict]:
    """``a - b`` over the seeds both have: mean, std, 95% t interval.

    Returns:
        dict | None: ``mean``, ``std``, ``ci95`` (``[low, high]``, None
        with one seed), ``n`` and ``seeds``; None without a common seed.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    d = np.array([a[s] - b[s] for s in seeds], dtype=float)
    out = dict(mean=float(d.mean()), n=len(seeds), seeds=seeds,
               std=float(d.std(ddof=1)) if len(d) > 1 else None, ci95=None)
    if len(d) > 1:
        half = _t975(len(d) - 1) * out['std'] / math.sqrt(len(d))
        out['ci95'] = [out['mean'] - half, out['mean'] + half]
    return out


def summarize(results: Dict[str, Dict[int, dict]],
              selfpatch: str = 'selfpatch') -> dict:
    """Aggregate per-run results.

    Args:
        results (dict): arm -> seed -> record with the :data:`METRICS`
            keys and ``pretrain_wall_s`` / ``pretrain_steps``.
        selfpatch (str): The arm compared against every DINO arm.

    Returns:
        dict: ``arms`` (per metric ``mean``, ``std``, ``values``; wall
        times and steps) and ``differences`` (``selfpatch - <arm>`` per
        metric, for each arm whose name starts with ``dino``).
    """
    arms = {}
    for arm, runs in results.items():
        row = dict(seeds=sorted(runs))
        for key in list(METRICS) + ['pretrain_wall_s', 'pretrain_steps']:
            vals = [runs[s][key] for s in sorted(runs)
                    if runs[s].get(key) is not None]
            if not vals:
                continue
            row[key] = dict(
                mean=float(np.mean(vals)),
                std=float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                values=[float(v) for v in vals])
        arms[arm] = row
    diffs = {}
    for arm in results:
        if not arm.startswith('dino') or selfpatch not in results:
            continue
        diffs[f'{selfpatch} - {arm}'] = {
            key: paired_difference(
                {s: r[key] for s, r in results[selfpatch].items()},
                {s: r[key] for s, r in results[arm].items()})
            for key in METRICS
        }
    return dict(arms=arms, differences=diffs)


def _fmt(stat: Optional[dict], digits: int = 1) -> str:
    if not stat:
        return '–'
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _markdown(summary: dict, meta: dict) -> str:
    lines = [
        '# Pretraining study', '',
        f"Seeds: {meta.get('seeds')}; mode: {meta.get('mode')}; "
        f"this call {meta.get('total_wall_s', 0) / 60:.1f} min, all runs "
        f"{meta.get('runs_wall_s', 0) / 60:.1f} min.", '',
        '| arm | ' + ' | '.join(METRICS.values()) +
        ' | pretrain steps | pretrain wall (s) |',
        '| --- ' * (len(METRICS) + 3) + '|',
    ]
    for arm, row in summary['arms'].items():
        cells = [_fmt(row.get(k)) for k in METRICS]
        cells += [_fmt(row.get('pretrain_steps'), 0),
                  _fmt(row.get('pretrain_wall_s'), 0)]
        lines.append(f'| {arm} | ' + ' | '.join(cells) + ' |')
    lines += ['', 'Paired differences (per seed), mean and 95% t interval:',
              '', '| difference | ' + ' | '.join(METRICS.values()) + ' |',
              '| --- ' * (len(METRICS) + 1) + '|']
    for name, per in summary['differences'].items():
        cells = []
        for key in METRICS:
            d = per[key]
            if d is None:
                cells.append('–')
            elif d['ci95'] is None:
                cells.append(f"{d['mean']:+.1f} (n=1, no interval)")
            else:
                cells.append(f"{d['mean']:+.1f} [{d['ci95'][0]:+.1f}, "
                             f"{d['ci95'][1]:+.1f}]")
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def _plot(summary: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    arms: List[str] = list(summary['arms'])
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        row = summary['arms'][arm]
        means = [row.get(k, {}).get('mean', np.nan) for k in METRICS]
        stds = [row.get(k, {}).get('std', 0.0) for k in METRICS]
        xs = np.arange(len(METRICS)) + (i - (len(arms) - 1) / 2) * width
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=arm)
    ax.set_xticks(np.arange(len(METRICS)))
    ax.set_xticklabels(list(METRICS.values()))
    ax.set_ylabel('% (mean ± std over seeds)')
    ax.legend(fontsize=8)
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(results: Dict[str, Dict[int, dict]], out_dir: str,
                 meta: dict) -> dict:
    """Write ``summary.json``, ``summary.md`` and ``summary.png``.

    Returns:
        dict: The JSON content.
    """
    summary = summarize(results)
    summary['meta'] = meta
    summary['runs'] = {
        arm: {str(s): r for s, r in runs.items()}
        for arm, runs in results.items()
    }
    with open(osp.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    with open(osp.join(out_dir, 'summary.md'), 'w') as f:
        f.write(_markdown(summary, meta))
    _plot(summary, osp.join(out_dir, 'summary.png'))
    return summary
