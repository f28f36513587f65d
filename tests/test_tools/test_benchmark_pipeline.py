# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""tools/analysis_tools/benchmark_pipeline.py: tiny rounds on the demo
config (the speed itself is measured by hand, see docs/benchmarks.md)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'analysis_tools' / 'benchmark_pipeline.py'
DEMO = ROOT / 'configs' / 'selfpatch' / 'selfpatch_vit-tiny-p8_1xb8-2e_demo.py'
STEPS = ('decode', 'sample params', 'crop+resize+flip', 'PackInputs',
         'other', 'total')


@pytest.mark.slow
def test_benchmark_pipeline_tiny_run():
    out = subprocess.run(
        [sys.executable, str(TOOL), str(DEMO), '--images', '3', '--rounds',
         '2', '--warmup', '0', '--size', '80', '60'],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    record = json.loads(lines[-1])
    assert record['threads'] == 1 and record['rounds'] == 2
    assert record['image_size'] == [80, 60] and record['images'] == 3
    assert len(record['ours_rounds']) == len(record['official_rounds']) == 2
    assert record['ours_images_per_s'] > 0
    assert record['official_images_per_s'] > 0
    ratios = [a / b for a, b in zip(record['ours_rounds'],
                                    record['official_rounds'])]
    assert abs(record['ratio'] - sum(ratios) / 2) < 1e-9  # median of 2
    steps = record['breakdown_ms_per_image']
    assert set(STEPS) <= set(steps), steps
    parts = sum(v for k, v in steps.items() if k != 'total')
    assert abs(parts - steps['total']) < 1e-6 * max(1.0, steps['total'])
    assert any('ratio (median of rounds)' in line for line in lines)
    assert any(line.startswith('| crop+resize+flip |') for line in lines)
