"""Training curves: TensorBoard event files from a real demo run, and the
plot of a work dir's vis_data/scalars.json."""
import json
from pathlib import Path

import pytest
from helpers import DEMO_CONFIG, load_tool, run_tool
from PIL import Image

TOOL = 'tools/analysis_tools/plot_curves.py'

# 8 images in batches of 4, one epoch: 2 iterations.
TINY = [
    'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=8',
    'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
    'default_hooks.logger.interval=1'
]


@pytest.fixture(scope='module')
def tensorboard_run(tmp_path_factory):
    """``tools/train.py`` on the demo with TensorBoard added to the
    default LocalVisBackend (a list cannot be appended to from
    --cfg-options, so a 2-line config adds it)."""
    pytest.importorskip('tensorboard')
    root = tmp_path_factory.mktemp('tb')
    cfg = root / 'demo_tb.py'
    cfg.write_text(
        f'_base_ = {DEMO_CONFIG!r}\n'
        "visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
        "dict(type='TensorboardVisBackend')])\n")
    work_dir = root / 'work'
    run_tool('tools/train.py', cfg, '--work-dir', work_dir, '--cfg-options',
             *TINY)
    return work_dir


@pytest.mark.slow
def test_tensorboard_event_files(tensorboard_run):
    events = list(tensorboard_run.glob('*/vis_data/events.out.tfevents.*'))
    assert len(events) == 1 and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert {'loss_cls', 'loss_patch', 'lr', 'teacher_momentum',
            'teacher_temp'} <= tags
    health = {f'health/{head}_{figure}' for head in ('cls', 'patch')
              for figure in ('entropy_frac', 'perplexity', 'kl',
                             'center_norm', 'feat_std')}
    assert health <= tags
    assert [e.step for e in acc.Scalars('loss_cls')] == [1, 2]


@pytest.mark.slow
def test_plot_the_real_run(tensorboard_run):
    out = load_tool(TOOL).main([str(tensorboard_run)])
    assert out == str(tensorboard_run / 'curves.png')
    with Image.open(out) as img:
        # Three columns of 5.5 inches (losses and schedules, the [CLS]
        # head's figures, the patch head's), five panels of 2.2 inches
        # each, at 100 dpi.
        assert img.size == (1650, 1100)
    tool = load_tool(TOOL)
    assert tool.columns(list(tool.DEFAULT_KEYS)) == [
        list(tool.DEFAULT_KEYS[:5]), list(tool.HEALTH_KEYS[:5]),
        list(tool.HEALTH_KEYS[5:])]
    # The losses alone: the one column of 8 inches.
    out = tool.main([str(tensorboard_run), '--keys', 'loss_cls', 'lr',
                     '--out', str(tensorboard_run / 'losses.png')])
    with Image.open(out) as img:
        assert img.size == (800, 440)


def _write_run(work_dir: Path, stamp: str, steps, lr: float) -> None:
    vis = work_dir / stamp / 'vis_data'
    vis.mkdir(parents=True)
    with open(vis / 'scalars.json', 'w') as f:
        for s in steps:
            f.write(json.dumps(dict(lr=lr, loss_cls=10.0 - s, step=s)) + '\n')
        f.write(json.dumps({'accuracy/top1': 1.0}) + '\n')  # no step


def test_resumed_runs_join_and_missing_keys_are_skipped(tmp_path, capsys):
    # A run to iteration 3, resumed from iteration 2: the second run's
    # values replace the first's from iteration 3 on.
    _write_run(tmp_path, '20260101_000000', [1, 2, 3], lr=1.0)
    _write_run(tmp_path, '20260102_000000', [3, 4], lr=2.0)
    tool = load_tool(TOOL)
    files = tool.find_scalar_files(str(tmp_path))
    curves = tool.load_scalars(files)
    assert curves['lr'] == {1: 1.0, 2: 1.0, 3: 2.0, 4: 2.0}
    out = tool.main([str(tmp_path), '--out', str(tmp_path / 'c.png')])
    assert Path(out).is_file()
    printed = capsys.readouterr().out
    assert 'Not logged, skipped: loss_patch, teacher_momentum, ' \
        'teacher_temp' in printed
    with pytest.raises(KeyError, match='logged scalars'):
        tool.main([str(tmp_path), '--keys', 'nothing'])
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        tool.main([str(tmp_path / 'empty')])


def test_several_runs_share_the_panels(tmp_path):
    # A healthy and a collapsed run; only the second logged a patch head.
    _write_run(tmp_path / 'good', '20260101_000000', [1, 2], lr=1.0)
    _write_run(tmp_path / 'flat', '20260101_000000', [1, 2, 3], lr=2.0)
    with open(tmp_path / 'flat' / '20260101_000000' / 'vis_data' /
              'scalars.json', 'a') as f:
        f.write(json.dumps({'health/patch_kl': 0.2, 'step': 3}) + '\n')
    tool = load_tool(TOOL)
    out = tool.main([str(tmp_path / 'good'), str(tmp_path / 'flat'),
                     '--keys', 'loss_cls', 'lr', 'health/patch_kl',
                     '--out', str(tmp_path / 'both.png')])
    with Image.open(out) as img:
        # two columns (losses and schedules, the patch head) of 5.5 inches,
        # two rows of 2.2
        assert img.size == (1100, 440)
    with pytest.raises(ValueError, match='2 paths, 1 labels'):
        tool.main([str(tmp_path / 'good'), str(tmp_path / 'flat'),
                   '--labels', 'good'])
