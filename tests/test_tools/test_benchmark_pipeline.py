# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""tools/analysis_tools/benchmark_pipeline.py, in-process on a few tiny
JPEGs (the speed itself is measured by hand, see docs/benchmarks.md).

The breakdown is checked against planted costs on a fake clock: each step
of the real demo pipeline advances the tool's clock by a known amount per
call, so every figure of the breakdown has an exact answer, and ``other``
(what no timed wrapper covers) must be the planted cost outside them, not
only "the total minus the parts"."""
import json
from types import SimpleNamespace
from unittest import mock

import cv2
import pytest
import torch
from helpers import DEMO_CONFIG, load_tool
from mmengine.config import Config

from selfpatch_mm.datasets.transforms import dino_multi_crop

STEPS = ('decode', 'sample params', 'crop+resize+flip', 'PackInputs',
         'other', 'total')


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/analysis_tools/benchmark_pipeline.py')


@pytest.fixture
def keep_threads():
    """``main`` sets one torch and one OpenCV thread, as a dataloader
    worker has: give the test process its own back."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv2_threads)


class FakeClock:
    """``time`` for the tool: ``perf_counter`` moves only by planted
    costs."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls = {}

    def perf_counter(self) -> float:
        return self.now

    def plant(self, name: str, fn, seconds: float):
        """``fn`` that costs ``seconds`` per call on this clock."""
        self.calls[name] = 0

        def costly(*args, **kwargs):
            self.calls[name] += 1
            self.now += seconds
            return fn(*args, **kwargs)

        return costly


def test_breakdown_finds_planted_costs(tool, tmp_path):
    """Planted per-call costs (s): decode 1e-3, parameter sampling 2e-3,
    each crop 3e-3, each solarize 5e-3, packing 7e-3, and 11e-3 in
    ``DINOMultiCrop.transform`` itself, outside every timed step, which is
    what ``other`` must show. Solarize runs on the 2 global views only."""
    cfg = Config.fromfile(DEMO_CONFIG)
    # both global views solarized: a step called on some views only
    cfg.merge_from_dict(
        {'train_dataloader.dataset.pipeline.1.global_solarize_prob': 1.0})
    ours = tool.build_ours(cfg)
    paths = tool.write_jpegs(str(tmp_path), 3, 80, 60)
    load, multicrop, pack = ours.steps
    clock = FakeClock()
    cost = dict(decode=1e-3, sample=2e-3, crop=3e-3, solarize=5e-3,
                pack=7e-3, transform=11e-3)
    with mock.patch.object(tool, 'time', SimpleNamespace(
            perf_counter=clock.perf_counter)), \
        mock.patch.object(load, 'transform', clock.plant(
            'decode', load.transform, cost['decode'])), \
        mock.patch.object(multicrop, '_sample', clock.plant(
            'sample', multicrop._sample, cost['sample'])), \
        mock.patch.object(multicrop, '_resized_crop', clock.plant(
            'crop', multicrop._resized_crop, cost['crop'])), \
        mock.patch.object(multicrop, 'transform', clock.plant(
            'transform', multicrop.transform, cost['transform'])), \
        mock.patch.object(pack, 'transform', clock.plant(
            'pack', pack.transform, cost['pack'])), \
        mock.patch.object(dino_multi_crop, 'solarize', clock.plant(
            'solarize', dino_multi_crop.solarize, cost['solarize'])):
        steps = tool.breakdown(ours, paths)
    n = len(paths)
    calls = clock.calls
    assert calls['transform'] == calls['decode'] == n
    assert calls['crop'] == n * multicrop.num_views
    assert calls['solarize'] == n * 2
    expected = {
        'decode': 1.0,
        'sample params': 2.0 * calls['sample'] / n,
        'crop+resize+flip': 3.0 * calls['crop'] / n,
        'solarize': 5.0 * calls['solarize'] / n,
        'PackInputs': 7.0,
        'other': 11.0,
    }
    expected = {k: v for k, v in expected.items() if v > 0}
    expected['total'] = sum(expected.values())
    timed = {k: v for k, v in steps.items() if v != 0 or k in expected}
    assert timed == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_main_record_and_table(tool, capsys, keep_threads):
    """A tiny run of ``main``: the JSON line and the table agree with the
    rounds it ran."""
    record = tool.main([
        DEMO_CONFIG, '--images', '3', '--rounds', '2', '--warmup', '0',
        '--size', '80', '60'
    ])
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == json.loads(json.dumps(record))
    assert record['threads'] == 1 and record['rounds'] == 2
    assert record['image_size'] == [80, 60] and record['images'] == 3
    assert len(record['ours_rounds']) == len(record['official_rounds']) == 2
    ratios = [a / b for a, b in zip(record['ours_rounds'],
                                    record['official_rounds'])]
    assert record['ratio'] == pytest.approx(sum(ratios) / 2)  # median of 2
    assert record['ours_images_per_s'] == pytest.approx(
        sum(record['ours_rounds']) / 2)
    assert set(STEPS) <= set(record['breakdown_ms_per_image'])
    assert any('ratio (median of rounds)' in line for line in lines)
    assert any(line.startswith('| crop+resize+flip |') for line in lines)
