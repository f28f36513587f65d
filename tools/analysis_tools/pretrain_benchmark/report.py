# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Human-readable tables of benchmark records."""
from typing import List

__all__ = ['format_table', 'format_sweep']


def format_table(r: dict) -> str:
    """Human-readable report of one benchmark record (FLOPs and breakdown
    when they were measured)."""
    step = 'official-shaped step' if r['official'] else 'our step'
    lines = [
        f"{r['variant']} ({step}) | {r['config']}",
        f"device {r['device']} {r['gpu'] or ''} ({r['threads']} threads), "
        f"amp={r['amp']}, fused AdamW={r['fused_adamw']}, SDPA={r['sdpa']}, "
        f"batch {r['batch_size']}, crops {' '.join(r['crops'])}"
        + (', compiled' + (' (losses too)' if r.get('compile_losses') else '')
           if r.get('compile') else ''),
        f"{'seconds/iter (median)':<26}{r['sec_per_iter']:>12.4f}",
        f"{'images/s':<26}{r['images_per_sec']:>12.2f}",
        f"{'peak memory (MiB)':<26}{r['peak_memory_mib']:>12.1f}"
        f"  ({r['peak_memory_kind']})",
        f"{'matmul GFLOP/s (' + r['matmul_dtype'] + ')':<26}"
        f"{r['matmul_gflops']:>12.1f}",
        f"{'load average (1 min)':<26}{r['load_average_1min']:>12.2f}",
    ]
    if r.get('compile'):
        lines.append(
            f"{'compile (s)':<26}{r['compile_sec']:>12.1f}  (first step "
            f"{r['compile_first_iter_sec']:.1f} s, {r['compiled_graphs']} "
            f"graphs, {r['graph_breaks']} breaks)")
        lines.append(
            f"{'eager / compiled':<26}{r['compile_speedup']:>12.3f}  "
            f"(interleaved: {r['interleaved_eager_sec']:.4f} / "
            f"{r['interleaved_compiled_sec']:.4f} s/iter)")
    if r['flops_per_iter']:
        lines += [
            f"{'GFLOP/iter (fwd+bwd)':<26}"
            f"{r['flops_per_iter'] / 1e9:>12.2f}",
            f"{'GFLOP/image':<26}{r['gflops_per_image']:>12.2f}",
            f"{'achieved GFLOP/s':<26}{r['achieved_gflops']:>12.1f}",
            f"{'fraction of matmul rate':<26}"
            f"{r['flop_rate_fraction']:>12.1%}",
        ]
    if r['flops_split']:
        lines.append('FLOP split (GFLOP/iter): ' + ', '.join(
            f'{k} {v / 1e9:.2f}' for k, v in r['flops_split'].items()))
    if r['breakdown_sec']:
        tot = r['breakdown_total_sec']
        lines.append(f'breakdown (instrumented, {tot:.4f} s/iter):')
        for part, sec in r['breakdown_sec'].items():
            lines.append(f'  {part:<24}{sec:>12.4f}  {sec / tot:>6.1%}')
    return '\n'.join(lines)


SWEEP_COLUMNS = (
    ('variant', 'variant', '{}'),
    ('official', 'step', '{}'),
    ('amp', 'amp', '{}'),
    ('fused_adamw', 'fused', '{}'),
    ('sdpa', 'sdpa', '{}'),
    ('compile', 'compiled', '{}'),
    ('batch_size', 'batch', '{}'),
    ('sec_per_iter', 's/iter', '{:.4f}'),
    ('images_per_sec', 'img/s', '{:.1f}'),
    ('peak_memory_mib', 'peak MiB', '{:.0f}'),
    ('flop_rate_fraction', 'of matmul', '{:.1%}'),
)


def _cell(r: dict, key: str, fmt: str) -> str:
    value = r.get(key)
    if key == 'official':
        return 'official' if value else 'ours'
    return '-' if value is None else fmt.format(value)


def format_sweep(records: List[dict]) -> str:
    """One row per record (a failed run shows its error), for comparing
    batch sizes, variants and switches measured in the same session."""
    head = [title for _, title, _ in SWEEP_COLUMNS]
    rows = []
    for r in records:
        if 'error' in r:
            cells = [str(r.get(k, '')) for k, _, _ in SWEEP_COLUMNS[:7]]
            rows.append(cells + [r['error']] + [''] * 3)
            continue
        rows.append([_cell(r, k, fmt) for k, _, fmt in SWEEP_COLUMNS])
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    lines = ['  '.join(c.rjust(w) for c, w in zip(row, widths))
             for row in [head] + rows]
    return '\n'.join(lines)
