"""End to end: pretraining with tools/train.py, resuming, the DINO baseline
and a smoke run of the ViT-S/16 paper config."""
import re
from pathlib import Path

import pytest
import torch
# conftest.py puts this folder on sys.path
from e2e_helpers import (DEMO_CFG, PAPER_CFG, load_ckpt, make_demo_images,
                         run_cmd, subprocess_env, train_cmd, write_config)

NUM_IMAGES = 16
BATCH = 8  # the demo config's batch size
ITERS_PER_EPOCH = NUM_IMAGES // BATCH


def _log_lines(output: str) -> list:
    """The per-iteration training log lines of a run's output."""
    return [line for line in output.splitlines() if 'Epoch(train)' in line]


@pytest.mark.slow
def test_demo_trains_then_resumes(tmp_path: Path, hook_dir: Path) -> None:
    data = tmp_path / 'images'
    make_demo_images(str(data), num=NUM_IMAGES, size=80)
    work_dir = tmp_path / 'work'

    # The demo config as a user runs it, for one epoch of the generated data.
    out = run_cmd(
        train_cmd(DEMO_CFG, work_dir, '--cfg-options',
                  f'train_dataloader.dataset.data_root={data}',
                  'train_cfg.max_epochs=1'),
        cwd=tmp_path).stdout
    lines = _log_lines(out)
    assert len(lines) == ITERS_PER_EPOCH, out[-3000:]
    # a quiet log: no WARNING per frozen (teacher) parameter, one INFO line,
    # and no other WARNING (mmengine's unused FileClient deprecations)
    assert 'requires_grad=False' not in out.replace(
        'Not optimised (requires_grad=False)', '')
    assert [line for line in out.splitlines() if ' - WARNING - ' in line
            ] == [], out[-3000:]
    assert 'Not optimised (requires_grad=False): 2 student parameters' in out
    for line in lines:
        assert re.search(r'loss_cls: \d', line), line
        assert re.search(r'loss_patch: \d', line), line
    ckpt1 = load_ckpt(work_dir / 'epoch_1.pth')
    assert ckpt1['meta']['epoch'] == 1
    assert ckpt1['meta']['iter'] == ITERS_PER_EPOCH
    state1 = ckpt1['state_dict']
    for prefix in ('backbone.', 'neck.', 'head.', 'patch_head.',
                   'teacher.backbone.', 'teacher.patch_head.'):
        assert any(k.startswith(prefix) for k in state1), prefix
    assert state1['head.loss_module.center'].abs().sum() > 0
    assert state1['patch_head.loss_module.center'].abs().sum() > 0

    # --resume (latest checkpoint of the work dir) to epoch 2; the same
    # config plus a hook that records the state training restarts from.
    dump = tmp_path / 'dump'
    dump.mkdir()
    cfg = write_config(
        tmp_path / 'demo_resume.py', {
            'train_dataloader.dataset.data_root': str(data),
            'train_cfg.max_epochs': 2
        },
        dump_dir=dump)
    out = run_cmd(
        train_cmd(cfg, work_dir, '--resume'),
        cwd=tmp_path,
        env=subprocess_env(hook_dir)).stdout
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in out, out[-3000:]
    lines = _log_lines(out)
    # Only epoch 2 ran, starting at its first iteration.
    assert len(lines) == ITERS_PER_EPOCH, out[-3000:]
    assert f'Epoch(train) [2][1/{ITERS_PER_EPOCH}]' in lines[0], lines[0]
    ckpt2 = load_ckpt(work_dir / 'epoch_2.pth')
    assert ckpt2['meta']['epoch'] == 2
    assert ckpt2['meta']['iter'] == 2 * ITERS_PER_EPOCH

    # The centres and the EMA teacher came back from epoch_1.pth (init
    # copies the student into the teacher, so a teacher that was not
    # restored would equal the student).
    start = torch.load(dump / 'before_train_rank0.pth', weights_only=True)
    assert start['iter'] == ITERS_PER_EPOCH and start['epoch'] == 1
    torch.testing.assert_close(start['center'],
                               state1['head.loss_module.center'])
    torch.testing.assert_close(start['patch_center'],
                               state1['patch_head.loss_module.center'])
    for key, value in start['teacher'].items():
        torch.testing.assert_close(value, state1['teacher.' + key], msg=key)
    name = 'backbone.layers.0.attn.qkv.weight'
    assert not torch.equal(start['teacher'][name], state1[name])
    # ... and training went on from there.
    end = torch.load(dump / 'after_train_rank0.pth', weights_only=True)
    assert not torch.equal(end['center'], start['center'])
    assert not torch.equal(end['teacher'][name], start['teacher'][name])


@pytest.mark.slow
def test_dino_baseline_from_demo_config(tmp_path: Path) -> None:
    data = tmp_path / 'images'
    make_demo_images(str(data), num=8, size=64)
    work_dir = tmp_path / 'work'
    out = run_cmd(
        train_cmd(DEMO_CFG, work_dir, '--cfg-options',
                  'model.with_patch_loss=False', 'model.patch_head=None',
                  f'train_dataloader.dataset.data_root={data}',
                  'train_dataloader.batch_size=4',
                  'train_dataloader.num_workers=0', 'train_cfg.max_epochs=1'),
        cwd=tmp_path).stdout
    lines = _log_lines(out)
    assert len(lines) == 2, out[-3000:]
    for line in lines:
        assert re.search(r'loss_cls: \d', line), line
        assert 'loss_patch' not in line, line
    state = load_ckpt(work_dir / 'epoch_1.pth')['state_dict']
    assert not any('patch_head' in k for k in state)
    assert any(k.startswith('teacher.head.') for k in state)


@pytest.mark.slow
def test_paper_config_runs_on_cpu(tmp_path: Path) -> None:
    """ViT-S/16 with the paper's crops (2x224 + 8x96) and heads (65536 and
    4096 outputs): 2 iterations at batch 2 (about 30 s on 2 cores)."""
    data = tmp_path / 'images'
    make_demo_images(str(data), num=4, size=96)
    out = run_cmd(
        train_cmd(
            PAPER_CFG,
            tmp_path / 'work',
            '--cfg-options',
            f'train_dataloader.dataset.data_root={data}',
            'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'train_dataloader.prefetch_factor=None',
            'train_dataloader.pin_memory=False',
            'train_cfg.max_epochs=1',
            'default_hooks.logger.interval=1',
            # the ~800 MB checkpoint (student, teacher, AdamW) is not needed
            'default_hooks.checkpoint.save_last=False'),
        cwd=tmp_path).stdout
    lines = _log_lines(out)
    assert len(lines) == 2, out[-3000:]
    for line in lines:
        loss_cls = float(re.search(r'loss_cls: ([\d.]+)', line).group(1))
        # cross-entropy over 65536 near-uniform prototypes: about ln(65536)
        assert 5 < loss_cls < 12, line
        assert re.search(r'loss_patch: \d', line), line
