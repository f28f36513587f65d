# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""tools/analysis_tools/benchmark_pretrain.py on the demo config (CPU)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from selfpatch_mm.utils.benchmark import crop_sizes

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'analysis_tools' / 'benchmark_pretrain.py'
DEMO = ROOT / 'configs' / 'selfpatch' / 'selfpatch_vit-tiny-p8_1xb8-2e_demo.py'
PARTS = ('student backbone', 'teacher backbone', 'positive matching',
         'aggregation', 'heads', 'losses', 'backward', 'optimizer+EMA',
         'other')


def test_crop_sizes_from_multiview():
    sizes = crop_sizes(Config.fromfile(str(DEMO)))
    assert sizes == [(64, 64)] * 2 + [(32, 32)] * 4
    cfg = Config(dict(train_dataloader=dict(dataset=dict(
        pipeline=[dict(type='LoadImageFromFile')]))))
    with pytest.raises(ValueError, match='MultiView'):
        crop_sizes(cfg)


def _run(*extra):
    out = subprocess.run(
        [sys.executable, str(TOOL), str(DEMO), '--batch-size', '2',
         '--iters', '1', '--warmup', '0', *extra],
        cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout, json.loads(out.stdout.strip().splitlines()[-1])


def _check_record(r, variant):
    assert r['variant'] == variant
    assert r['crops'] == ['64x64'] * 2 + ['32x32'] * 4
    for key in ('sec_per_iter', 'images_per_sec', 'peak_memory_mib',
                'flops_per_iter', 'achieved_gflops', 'matmul_gflops',
                'flop_rate_fraction', 'breakdown_total_sec'):
        assert r[key] > 0, key
    assert set(r['breakdown_sec']) == set(PARTS)
    for part in PARTS[:-1]:
        assert r['breakdown_sec'][part] >= 0, part
    for part in ('student backbone', 'backward', 'optimizer+EMA'):
        assert r['breakdown_sec'][part] > 0, part


def test_compare_selfpatch_and_dino():
    stdout, r = _run('--compare')
    assert 'seconds/iter' in stdout and 'time ratio' in stdout
    sp, dino = r['selfpatch'], r['dino']
    _check_record(sp, 'selfpatch')
    _check_record(dino, 'dino')
    # The patch branch adds the teacher's local crops, the patch heads and
    # the neighbour aggregation; DINO has none of it.
    assert sp['breakdown_sec']['positive matching'] > 0
    assert dino['breakdown_sec']['positive matching'] == 0
    assert r['flop_ratio'] == pytest.approx(
        sp['flops_per_iter'] / dino['flops_per_iter'])
    assert 1.2 < r['flop_ratio'] < 3
    assert sp['flops_split']['teacher backbone'] > \
        dino['flops_split']['teacher backbone']
