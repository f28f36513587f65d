"""End to end: the health figures reach scalars.json and TensorBoard, and
CollapseMonitorHook warns about (or stops) a run whose teacher temperature
of 1.0 leaves both heads at the uniform output."""
import glob
import json
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
# conftest.py puts this folder on sys.path
from e2e_helpers import (DEMO_CFG, REPO_ROOT, load_ckpt, run_cmd, train_cmd,
                         write_config, write_demo_run)

pytestmark = pytest.mark.slow

# 16 images in batches of 4, 6 epochs: 24 iterations, logged every one.
NUM_IMAGES, BATCH, EPOCHS = 16, 4, 6
ITERS = NUM_IMAGES // BATCH * EPOCHS
WARMUP, PATIENCE = 8, 3
FIGURES = ('entropy_frac', 'perplexity', 'kl', 'center_norm', 'feat_std')


def _flat_teacher_run(tmp_path: Path, name: str, stop: bool = False,
                      tensorboard: bool = False) -> Path:
    """The demo recipe with a teacher temperature of 1.0 on both heads."""
    hooks = [
        dict(type='TeacherEMAHook', momentum=0.996, end_momentum=1.0),
        dict(type='TeacherTempWarmupHook', warmup_teacher_temp=1.0,
             teacher_temp=1.0, warmup_epochs=0),
        dict(type='FreezeLastLayerHook', num_epochs=1),
        dict(type='CollapseMonitorHook', warmup_iters=WARMUP,
             patience=PATIENCE, stop=stop),
    ]
    backends = [dict(type='LocalVisBackend')] + (
        [dict(type='TensorboardVisBackend')] if tensorboard else [])
    return write_demo_run(
        tmp_path, name, {
            'train_dataloader.batch_size': BATCH,
            'train_cfg.max_epochs': EPOCHS,
            'custom_hooks': hooks,
            'visualizer.vis_backends': backends,
            'default_hooks.checkpoint.interval': EPOCHS,
        },
        num_images=NUM_IMAGES)


def _warnings(output: str) -> list:
    return [line for line in output.splitlines()
            if 'WARNING - CollapseMonitorHook:' in line]


def test_flat_teacher_warns_for_both_heads_and_logs_the_figures(tmp_path):
    pytest.importorskip('tensorboard')
    cfg = _flat_teacher_run(tmp_path, 'flat.py', tensorboard=True)
    work = tmp_path / 'work'
    out = run_cmd(train_cmd(cfg, work), cwd=tmp_path).stdout
    warnings = _warnings(out)
    assert len(warnings) == 2, out[-4000:]
    # The first check past the warm-up is iteration WARMUP + 1, so the
    # PATIENCE-th bad interval in a row ends at WARMUP + PATIENCE.
    at = f'up to iteration {WARMUP + PATIENCE})'
    for head, line in zip(('image ([CLS]) head', 'patch head'), warnings):
        assert f'the {head} is near uniform collapse' in line, line
        assert '> 0.98' in line and at in line, line
        assert 'teacher_temp = 1:' in line, line
    assert 'health/cls_entropy_frac = 0.99' in warnings[0]
    # Training went on to the end (a warning, not a stop).
    assert (work / f'epoch_{EPOCHS}.pth').is_file()

    (scalars, ) = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))
    rows = [json.loads(line) for line in open(scalars)]
    names = [f'health/{h}_{f}' for h in ('cls', 'patch') for f in FIGURES]
    assert [r['step'] for r in rows] == list(range(1, ITERS + 1))
    for row in rows:
        assert set(names) <= set(row), sorted(row)
        assert all(math.isfinite(row[n]) for n in names)
    # At a temperature of 1 every target is almost uniform.
    assert all(r['health/cls_entropy_frac'] > 0.99 for r in rows)

    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    (events, ) = glob.glob(str(work / '*' / 'vis_data' / 'events.out.*'))
    acc = EventAccumulator(str(Path(events).parent))
    acc.Reload()
    assert set(names) <= set(acc.Tags()['scalars'])
    steps = [e.step for e in acc.Scalars('health/patch_perplexity')]
    assert steps == list(range(1, ITERS + 1))


def test_stop_option_saves_a_finite_checkpoint_and_exits_nonzero(tmp_path):
    cfg = _flat_teacher_run(tmp_path, 'flat_stop.py', stop=True)
    work = tmp_path / 'work'
    proc = run_cmd(train_cmd(cfg, work), cwd=tmp_path, expect_ok=False)
    assert proc.returncode != 0, proc.stdout[-3000:]
    stop_iter = WARMUP + PATIENCE
    assert 'Stopped (stop=True)' in proc.stdout, proc.stdout[-3000:]
    ckpt = work / 'latest.pth'
    assert ckpt.is_file(), sorted(p.name for p in work.iterdir())
    state = load_ckpt(ckpt)
    assert state['meta']['iter'] == stop_iter
    # a resume target: it knows its place in the epoch
    assert state['meta']['train_position']['iter'] == stop_iter
    assert (work / 'last_checkpoint').read_text() == 'latest.pth'
    assert 'optimizer' in state
    for key, value in state['state_dict'].items():
        assert torch.isfinite(value).all(), key
    # No later iteration ran (one log line per iteration).
    assert proc.stdout.count('Epoch(train)') == stop_iter, proc.stdout[-3000:]
    assert not list(work.glob('epoch_*.pth'))


def test_demo_does_not_warn(tmp_path):
    """The demo as a user runs it (its own images, 2 epochs), watched from
    the first iteration instead of after the default warm-up."""
    hooks = Config.fromfile(str(DEMO_CFG)).custom_hooks
    (monitor, ) = [h for h in hooks if h.type == 'CollapseMonitorHook']
    monitor.warmup_iters = 0
    cfg = write_config(
        tmp_path / 'demo_watched.py', {
            'train_dataloader.dataset.data_root':
            str(REPO_ROOT / 'demo' / 'images'),
            'train_dataloader.num_workers': 0,
            'custom_hooks': hooks,
        })
    out = run_cmd(train_cmd(cfg, tmp_path / 'work'), cwd=tmp_path).stdout
    assert out.count('Epoch(train)') == 6, out[-3000:]
    assert 'CollapseMonitorHook:' not in out, out[-3000:]
