"""compare_precision.py: its distances and smoothing (known answers), the
command line of each run, and a tiny fp32/bf16/fp16 run of the demo through
tools/train.py with its summary and picture."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL = REPO_ROOT / 'tools' / 'analysis_tools' / 'compare_precision.py'
_spec = importlib.util.spec_from_file_location('compare_precision', TOOL)
cp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cp)


def test_relative_distance_known_answer() -> None:
    ref = {'a': torch.tensor([3.0, 0.0]), 'b': torch.tensor([[4.0]])}
    other = {'a': torch.tensor([3.0, 1.0]), 'b': torch.tensor([[4.0]])}
    # ||(0, 1, 0)|| / ||(3, 0, 4)|| = 1 / 5
    assert cp.relative_distance(other, ref) == pytest.approx(0.2)
    assert cp.relative_distance(ref, ref) == 0.0


def test_smooth_and_final_losses_known_answers() -> None:
    assert cp.smooth([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    rows = [dict(loss=float(i), loss_cls=2.0 * i) for i in range(6)]
    assert cp.final_losses(rows, 3) == dict(loss=4.0, loss_cls=8.0)
    assert cp.checkpoint_epochs(30) == [5, 10, 15, 20, 25, 30]
    assert cp.checkpoint_epochs(4) == [1, 2, 3, 4]


def test_run_commands() -> None:
    def cmd(run):
        return cp.train_command('c.py', 'w', run, [])[2:]

    assert cmd('fp32') == ['c.py', '--work-dir', 'w']
    assert cmd('bf16')[-2:] == ['--amp-dtype', 'bf16']
    assert cmd('fp16')[-2:] == ['--amp-dtype', 'fp16']
    fix = cmd('bf16_fp32proto')
    assert fix[3:5] == ['--amp-dtype', 'bf16']
    assert fix[-2:] == ['model.head.fp32_last_layer=True',
                        'model.patch_head.fp32_last_layer=True']


@pytest.mark.slow
def test_tiny_run_writes_summary_and_picture(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = str(REPO_ROOT) + (
        os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    out = tmp_path / 'precision'
    proc = subprocess.run(
        [sys.executable, str(TOOL), '--out-dir', str(out), '--models',
         'demo', '--epochs', '2', '--num-train', '16', '--num-val', '12',
         '--ref-seed', '-1', '--jobs', '2'],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    summary = json.loads((out / 'summary.json').read_text())
    rows = {r['run']: r for r in summary['rows']}
    assert sorted(rows) == ['bf16', 'fp16', 'fp32']
    assert rows['fp32']['teacher_dist'] == 0.0
    for name in ('bf16', 'fp16'):
        # autocast changed the run, a little
        assert 0.0 < rows[name]['teacher_dist'] < 0.5, rows[name]
        assert rows[name]['iters'] == rows['fp32']['iters'] == 6
    assert (out / 'curves.png').stat().st_size > 0
    # the fp16 run went through the GradScaler
    log = (out / 'demo' / 'fp16_seed0' / 'train.log').read_text()
    assert 'amp_skipped_steps' in log
