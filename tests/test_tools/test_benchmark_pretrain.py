# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""tools/analysis_tools/benchmark_pretrain.py on the demo config (CPU)."""
import json
from pathlib import Path

import pytest
import torch
from helpers import run_tool, tool_env
from mmengine.config import Config

from pretrain_benchmark import crop_sizes

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
    out = run_tool(TOOL, DEMO, '--batch-size', '2', '--iters', '1',
                   '--warmup', '0', *extra, env=tool_env(threads=None),
                   merge_stderr=False)
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


@pytest.mark.slow
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
    # the tool's split is the hand count of test_teacher_flops_known_answer
    assert dino['flops_split']['teacher backbone'] == 261_095_424
    assert sp['flops_split']['teacher backbone'] == 382_205_952


def _demo_vit(side: int) -> int:
    """Forward FLOPs of the demo ViT (96-d, 4 blocks, FFN 384, patch 8, no
    [CLS]) on one ``side``-pixel crop, as torch's counter counts them: 2
    per multiply-add of the patch convolution, the qkv / projection / FFN
    matmuls (12 C^2 per token) and the attention (QK^T and AV: 2 N^2 C)."""
    c, layers, p = 96, 4, 8
    n = (side // p)**2
    block = 2 * (12 * c * c * n + 2 * n * n * c)
    return layers * block + 2 * n * c * 3 * p * p


@pytest.mark.parametrize('no_patch', [False, True], ids=['selfpatch', 'dino'])
def test_teacher_flops_known_answer(no_patch):
    """The counted teacher FLOPs are the ViT's by hand: SelfPatch's teacher
    sees all 6 crops, DINO's only the 2 global ones (no gradients: forward
    FLOPs only), batch 2."""
    from pretrain_benchmark import (build_step, step_flops, synthetic_batch,
                                    train_step)
    cfg = Config.fromfile(str(DEMO))
    torch.manual_seed(0)
    model, optim_wrapper = build_step(cfg, no_patch=no_patch)
    data = synthetic_batch(crop_sizes(cfg), 2, False)
    _, split = step_flops(model, optim_wrapper, data, train_step)
    expected = 2 * 2 * _demo_vit(64) + (0 if no_patch else
                                        2 * 4 * _demo_vit(32))
    assert split['teacher backbone'] == expected
    assert expected == (261_095_424 if no_patch else 382_205_952)


@pytest.mark.slow
def test_health_cost():
    """--health-cost times the figures inside real steps: part of the step
    with them on, and the model is left with them on."""
    _, r = _run('--health-cost', '--no-breakdown', '--iters', '2')
    assert 0 < r['health_sec_per_iter'] < r['sec_per_iter_health_on']
    assert r['health_fraction'] == pytest.approx(
        r['health_sec_per_iter'] / r['sec_per_iter_health_on'])
    assert r['health_on_over_off'] == pytest.approx(
        r['sec_per_iter_health_on'] / r['sec_per_iter_health_off'])


def test_compiled_record_in_the_tables():
    """A compiled record shows its compile time, graphs and eager/compiled
    ratio in the table, and a 'compiled' column in the sweep."""
    from pretrain_benchmark import format_sweep, format_table
    r = dict(config='c.py', variant='selfpatch', official=False,
             device='cpu', gpu=None, threads=2, amp='fp32',
             fused_adamw=False, sdpa=True, batch_size=2, crops=['64x64'],
             sec_per_iter=0.5, images_per_sec=4.0, peak_memory_mib=100.0,
             peak_memory_kind='process_peak_rss', matmul_gflops=100.0,
             matmul_dtype='float32', load_average_1min=0.5,
             flops_per_iter=None, flops_split=None, breakdown_sec=None,
             compile=True, compile_losses=False, compile_sec=61.5,
             compile_first_iter_sec=62.0, compiled_graphs=12,
             graph_breaks=0, compile_speedup=1.25,
             interleaved_eager_sec=0.625, interleaved_compiled_sec=0.5)
    table = format_table(r)
    assert 'batch 2, crops 64x64, compiled' in table
    assert 'compile (s)                       61.5  (first step 62.0 s, ' \
        '12 graphs, 0 breaks)' in table
    assert 'eager / compiled                 1.250  (interleaved: ' \
        '0.6250 / 0.5000 s/iter)' in table
    head, row = format_sweep([r]).splitlines()
    assert head.split()[5] == 'compiled' and row.split()[5] == 'True'
