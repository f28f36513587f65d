# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""tools/analysis_tools/benchmark_checkpoint.py on the demo config: the
record describes the file it wrote (the seconds themselves are measured by
hand, see docs/checkpoints_and_resume.md)."""
import json
from pathlib import Path

import pytest
import torch
from helpers import run_tool, tool_env

from selfpatch_mm.checkpoint import load_checkpoint_file

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'analysis_tools' / 'benchmark_checkpoint.py'
DEMO = ROOT / 'configs' / 'selfpatch' / 'selfpatch_vit-tiny-p8_1xb8-2e_demo.py'


@pytest.mark.slow
def test_benchmark_checkpoint_reports_the_file_it_wrote(tmp_path: Path):
    out = run_tool(TOOL, DEMO, '--repeat', '2', '--work-dir', tmp_path,
                   env=tool_env(threads=None), merge_stderr=False).stdout
    record = json.loads(out.strip().splitlines()[-1])
    latest = tmp_path / 'work' / 'latest.pth'
    assert record['file_mib'] * 2**20 == latest.stat().st_size
    ckpt = load_checkpoint_file(str(latest))
    model_bytes = sum(v.numel() * v.element_size()
                      for v in ckpt['state_dict'].values()
                      if torch.is_tensor(v))
    assert record['part_mib']['model'] * 2**20 == model_bytes
    # the one trained iteration left AdamW moments: 2 per trained tensor
    moments = [v for s in ckpt['optimizer']['state'].values()
               for k, v in s.items() if k in ('exp_avg', 'exp_avg_sq')]
    assert len(moments) == 2 * len(ckpt['optimizer']['state']) > 0
    assert set(record['sec_parts']) == {
        'Runner.save_checkpoint', 'finite-state check', 'fsync',
        'read-back check'}
    assert record['repeat'] == 2
    assert 'seconds per checkpoint' in out
