# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Summary of the study: mean ± std over seeds, paired differences with a
t-based 95% interval, written as JSON, Markdown and one PNG."""
import json
import math
import os.path as osp
from typing import Dict, List, Optional

import numpy as np

__all__ = [
    'METRICS', 'paired_difference', 'summarize', 'calibration_verdict',
    'write_report'
]

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


def _stat(vals: List[float]) -> dict:
    """``mean``, ``std`` (0 for one value) and ``values`` over seeds."""
    return dict(mean=float(np.mean(vals)),
                std=float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                values=[float(v) for v in vals])


def summarize(results: Dict[str, Dict[int, dict]],
              selfpatch: str = 'selfpatch',
              random_init: str = 'random_init') -> dict:
    """Aggregate per-run results.

    Args:
        results (dict): arm -> seed -> record with the :data:`METRICS`
            keys and ``pretrain_wall_s`` / ``pretrain_steps``.
        selfpatch (str): The arm compared against every DINO arm.

    Returns:
        dict: ``arms`` (per metric ``mean``, ``std``, ``values``; wall
        times and steps; ``health``, the same for every final health
        figure of the runs), ``differences`` (``selfpatch - <arm>`` per
        metric, for each arm whose name starts with ``dino``) and
        ``calibration`` (``<arm> - random_init`` for every other arm) and
        ``calibrated`` (:func:`calibration_verdict`).
    """
    arms = {}
    for arm, runs in results.items():
        row = dict(seeds=sorted(runs))
        for key in list(METRICS) + ['pretrain_wall_s', 'pretrain_steps']:
            vals = [runs[s][key] for s in sorted(runs)
                    if runs[s].get(key) is not None]
            if vals:
                row[key] = _stat(vals)
        health = _health(runs)
        if health:
            row['health'] = health
        arms[arm] = row

    def per_metric(a: str, b: str) -> dict:
        return {
            key: paired_difference({s: r[key] for s, r in results[a].items()},
                                   {s: r[key] for s, r in results[b].items()})
            for key in METRICS
        }

    diffs = {
        f'{selfpatch} - {arm}': per_metric(selfpatch, arm)
        for arm in results if arm.startswith('dino') and selfpatch in results
    }
    # the instrument is only calibrated if pretraining beats its own
    # starting point on every metric
    calibration = {
        f'{arm} - {random_init}': per_metric(arm, random_init)
        for arm in results if random_init in results and arm != random_init
    }
    return dict(arms=arms, differences=diffs, calibration=calibration,
                calibrated=calibration_verdict(calibration))


#: health figures of the summary table: (key, column label)
HEALTH_COLUMNS = (
    ('health/cls_entropy_frac', '[CLS] H/log K'),
    ('health/cls_perplexity', '[CLS] perplexity'),
    ('health/cls_feat_std', '[CLS] feat std'),
    ('health/patch_entropy_frac', 'patch H/log K'),
    ('health/patch_perplexity', 'patch perplexity'),
    ('health/patch_feat_std', 'patch feat std'),
)


def _health(runs: Dict[int, dict]) -> Dict[str, dict]:
    """Per health figure, ``mean``/``std``/``values`` over the seeds of the
    runs' final figures (``record['health']``)."""
    out = {}
    keys = sorted({k for r in runs.values() for k in r.get('health', {})})
    for key in keys:
        vals = [runs[s]['health'][key] for s in sorted(runs)
                if key in runs[s].get('health', {})]
        out[key] = _stat(vals)
    return out


def _health_table(arms: dict) -> List[str]:
    """Markdown rows of each arm's final health figures; a figure past a
    collapse threshold of ``CollapseMonitorHook`` is marked."""
    from selfpatch_mm.models.utils.health import (ONE_PROTOTYPE_PERPLEXITY,
                                                  UNIFORM_ENTROPY_FRAC)
    rows = [(arm, row['health']) for arm, row in arms.items()
            if row.get('health')]
    if not rows:
        return []
    lines = [
        '', 'Final health figures (last logged value, mean ± std over '
        f'seeds; ⚠ past a collapse threshold: H/log K > '
        f'{UNIFORM_ENTROPY_FRAC:g}, perplexity < '
        f'{ONE_PROTOTYPE_PERPLEXITY:g}; see docs/health.md):', '',
        '| arm | ' + ' | '.join(c for _, c in HEALTH_COLUMNS) + ' |',
        '| --- ' * (len(HEALTH_COLUMNS) + 1) + '|'
    ]
    for arm, health in rows:
        cells = []
        for key, _ in HEALTH_COLUMNS:
            stat = health.get(key)
            digits = 1 if key.endswith('perplexity') else 3
            cell = _fmt(stat, digits)
            if stat and ((key.endswith('entropy_frac')
                          and stat['mean'] > UNIFORM_ENTROPY_FRAC) or
                         (key.endswith('perplexity')
                          and stat['mean'] < ONE_PROTOTYPE_PERPLEXITY)):
                cell += ' ⚠'
            cells.append(cell)
        lines.append(f'| {arm} | ' + ' | '.join(cells) + ' |')
    return lines


def calibration_verdict(calibration: dict) -> Dict[str, dict]:
    """Per metric: does every pretrained arm beat random init?

    Args:
        calibration (dict): ``'<arm> - random_init'`` -> metric -> paired
            difference, as in :func:`summarize`.

    Returns:
        dict: metric -> ``clear`` (True when every arm's 95% interval lies
        above zero, None when an interval is missing, e.g. one seed) and
        ``not_clear`` (the arms whose interval reaches zero or below).
    """
    verdict = {}
    for key in METRICS:
        diffs = {name.rsplit(' - ', 1)[0]: per[key]
                 for name, per in calibration.items()}
        if not diffs or any(d is None or d['ci95'] is None
                            for d in diffs.values()):
            verdict[key] = dict(clear=None, not_clear=[])
            continue
        below = [arm for arm, d in diffs.items() if d['ci95'][0] <= 0]
        verdict[key] = dict(clear=not below, not_clear=below)
    return verdict


def _fmt(stat: Optional[dict], digits: int = 1) -> str:
    if not stat:
        return '–'
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _difference_table(diffs: dict) -> List[str]:
    lines = ['| difference | ' + ' | '.join(METRICS.values()) + ' |',
             '| --- ' * (len(METRICS) + 1) + '|']
    for name, per in diffs.items():
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
    return lines


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
              ''] + _difference_table(summary['differences'])
    if summary.get('calibration'):
        lines += ['', 'Calibration: each arm minus random init (its starting '
                  'point), paired by seed:', ''
                  ] + _difference_table(summary['calibration'])
        lines += ['', _verdict_line(summary.get('calibrated', {}))]
    lines += _health_table(summary['arms'])
    return '\n'.join(lines) + '\n'


def _verdict_line(verdict: dict) -> str:
    parts = []
    for key, name in METRICS.items():
        v = verdict.get(key, dict(clear=None))
        if v['clear'] is None:
            parts.append(f'{name}: untested (needs 2+ seeds)')
        else:
            parts.append(f'{name}: ' + ('yes' if v['clear'] else
                                        f"no ({', '.join(v['not_clear'])})"))
    return ('Calibrated (every pretrained arm above random init, 95% '
            'interval): ' + '; '.join(parts) + '. A difference between '
            'arms on a metric that is not calibrated measures nothing.')


def _plot(summary: dict, path: str) -> None:
    """Grouped bars, one panel per metric: the arms differ by a point or
    two on scales as far apart as 12 and 74, so every panel gets its own
    y range (zoomed, not from zero; the title says so)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    arms: List[str] = list(summary['arms'])
    fig, axes = plt.subplots(1, len(METRICS), figsize=(11, 3.8))
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, (key, label) in zip(np.atleast_1d(axes), METRICS.items()):
        rows = [summary['arms'][a].get(key, {}) for a in arms]
        means = np.array([r.get('mean', np.nan) for r in rows])
        stds = np.array([r.get('std', 0.0) for r in rows])
        xs = np.arange(len(arms))
        ax.bar(xs, means, 0.8, yerr=stds, capsize=3,
               color=[colours[i % len(colours)] for i in xs])
        low, high = np.nanmin(means - stds), np.nanmax(means + stds)
        if np.isfinite(low) and np.isfinite(high):
            pad = max(high - low, 1.0) * 0.25
            ax.set_ylim(max(low - pad, 0.0), high + pad)
        ax.set_xticks(xs)
        ax.set_xticklabels(arms, rotation=35, ha='right', fontsize=8)
        ax.set_title(f'{label} (zoomed)', fontsize=10)
        ax.grid(axis='y', alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel('% (mean ± std over seeds)')
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
