"""Preemption through tools/train.py: a signal stops the run at the next
iteration with a checkpoint of it, and ``--resume`` finishes with the
weights of an uninterrupted run, tensor for tensor.

The runs are the demo SelfPatch model with drop path on, in fp16 with a
dynamic GradScaler (the GPU recipe, under CPU autocast), 24 images at batch
2 (12 iterations an epoch) for 2 epochs. The signal is a real one: sent by
the training process to itself from a hook at a chosen iteration, or by the
test to the whole process group while a checkpoint is being written (the
write is slowed down by a test module, which also marks when it starts).
"""
import os
import re
import signal
import time
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from helpers import start_tool
# conftest.py puts this folder on sys.path
from e2e_helpers import (PREEMPTION_TEST_HOOKS, load_ckpt, make_demo_images,
                         run_cmd, subprocess_env, train_cmd, training_state,
                         with_test_hooks, write_config)

from selfpatch_mm.engine.hooks import PREEMPTED_EXIT_CODE
from selfpatch_mm.checkpoint.checkpoint_files import is_tmp_checkpoint

pytestmark = pytest.mark.slow

ITERS_PER_EPOCH, EPOCHS = 12, 2


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> Dict:
    """Images, the test hooks, the config and the uninterrupted run."""
    root = tmp_path_factory.mktemp('preemption')
    data = root / 'images'
    make_demo_images(str(data), num=ITERS_PER_EPOCH * 2, size=64)
    hooks = root / 'hooks'
    hooks.mkdir()
    (hooks / 'preemption_test_hooks.py').write_text(PREEMPTION_TEST_HOOKS)
    cfg = write_config(
        root / 'demo.py', {
            'train_dataloader.dataset.data_root': str(data),
            'train_dataloader.batch_size': 2,
            'train_dataloader.num_workers': 0,
            'model.backbone.drop_path_rate': 0.1,
            'train_cfg.max_epochs': EPOCHS,
            'default_hooks.logger.interval': 1,
            'default_hooks.checkpoint.max_keep_ckpts': -1,
            # the GPU recipe's fp16 with a dynamic GradScaler (CPU autocast
            # here), so the scaler's state must survive too
            'optim_wrapper.type': 'SelfPatchAmpOptimWrapper',
            'optim_wrapper.dtype': 'float16',
            'optim_wrapper.loss_scale': 'dynamic',
        })
    # one thread: two OpenMP threads on a core another process is using
    # spin-wait, which made these runs several times slower
    env = subprocess_env(hooks, threads=1)
    straight = root / 'straight'
    run_cmd(train_cmd(cfg, straight), cwd=root, env=env)
    return dict(root=root, cfg=cfg, env=env,
                want=load_ckpt(straight / f'epoch_{EPOCHS}.pth'))


def _with_hooks(setup: Dict, name: str, hooks: List[dict]) -> Path:
    return with_test_hooks(setup['cfg'], setup['root'] / name,
                           'preemption_test_hooks', hooks)


def _assert_equal_to_uninterrupted(setup: Dict, work: Path) -> None:
    got = load_ckpt(work / f'epoch_{EPOCHS}.pth')
    want = setup['want']
    assert got['meta']['iter'] == want['meta']['iter'] == \
        EPOCHS * ITERS_PER_EPOCH
    assert got['optimizer']['loss_scaler'] == want['optimizer']['loss_scaler']
    ta, tb = training_state(want), training_state(got)
    assert ta.keys() == tb.keys()
    assert [k for k in ta if not torch.equal(ta[k], tb[k])] == []
    assert not any(is_tmp_checkpoint(n) for n in os.listdir(work))


def _resume(setup: Dict, work: Path, *extra: str) -> str:
    return run_cmd(train_cmd(setup['cfg'], work, '--resume', *extra),
                   cwd=setup['root'], env=setup['env']).stdout


@pytest.mark.parametrize('at_iter,workers', [(2, 0), (17, 2)],
                         ids=['early-in-epoch-1', 'middle-of-epoch-2'])
def test_signal_mid_epoch_then_resume_is_exact(setup, at_iter: int,
                                               workers: int) -> None:
    """SIGTERM during iteration ``at_iter``: saved after it, exit 75; the
    resume continues at the next batch. With 2 persistent workers too: the
    samples' augmentations do not depend on the workers."""
    root = setup['root']
    cfg = _with_hooks(setup, f'signal_{at_iter}.py',
                      [dict(type='SignalAtHook', at_iter=at_iter)])
    work = root / f'signal_{at_iter}'
    loader = [f'train_dataloader.num_workers={workers}',
              f'train_dataloader.persistent_workers={workers > 0}']
    proc = run_cmd(train_cmd(cfg, work, '--cfg-options', *loader),
                   cwd=root, env=setup['env'], expect_ok=False)
    assert proc.returncode == PREEMPTED_EXIT_CODE, proc.stdout[-4000:]
    done = at_iter + 1
    assert f'Stopping on SIGTERM: saved the state after iteration {done} ' \
        f'to {work / "latest.pth"}' in proc.stdout
    # it stopped at that boundary: no later iteration was trained
    epoch, batch = divmod(done, ITERS_PER_EPOCH)
    assert re.search(rf'Epoch\(train\) +\[{epoch + 1}\]\[ *{batch + 1}/',
                     proc.stdout) is None
    latest = load_ckpt(work / 'latest.pth')
    assert latest['meta']['iter'] == done
    assert 'scale' in latest['optimizer']['loss_scaler']
    assert latest['meta']['train_position']['batches'] == \
        done % ITERS_PER_EPOCH
    assert (work / 'last_checkpoint').read_text() == 'latest.pth'

    out = _resume(setup, work, '--cfg-options', *loader)
    assert f'resumed epoch: {epoch}, iter: {done}' in out
    assert f'Resuming epoch {epoch + 1} at batch {batch + 1} of ' \
        f'{ITERS_PER_EPOCH} (iteration {done + 1})' in out
    _assert_equal_to_uninterrupted(setup, work)


def _start(setup: Dict, cfg: Path, work: Path, slow: str) -> tuple:
    mark = setup['root'] / f'{work.name}.writing'
    env = dict(setup['env'], SLOW_CHECKPOINT=slow, SLOW_MARK=str(mark))
    log = open(setup['root'] / f'{work.name}.log', 'w')
    proc = start_tool('tools/train.py', cfg, '--work-dir', work,
                      cwd=setup['root'], env=env, stdout=log,
                      start_new_session=True)
    deadline = time.time() + 240
    while not mark.exists():
        assert proc.poll() is None and time.time() < deadline, \
            Path(log.name).read_text()[-4000:]
        time.sleep(0.05)
    return proc, Path(log.name)


def test_signal_during_epoch_checkpoint_then_resume_is_exact(setup):
    """SIGTERM to every process while epoch_1.pth is written, then again:
    the write completes, nothing more is saved (epoch_1.pth holds the
    state), the run exits 75 before epoch 2; the resume is exact."""
    work = setup['root'] / 'during_epoch_ckpt'
    cfg = _with_hooks(setup, 'during_epoch_ckpt.py', [])
    proc, log = _start(setup, cfg, work, slow='epoch_1.pth')
    start = time.time()
    os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == PREEMPTED_EXIT_CODE, \
        log.read_text()[-4000:]
    # by itself, soon: the rest of the slowed write (4 s) and the check at
    # the next epoch's start (a loose bound, for a loaded CI machine)
    assert time.time() - start < 30
    text = log.read_text()
    assert 'the newest checkpoint already holds this state, nothing new ' \
        'to save' in text
    assert not (work / 'latest.pth').exists()
    assert (work / 'last_checkpoint').read_text() == 'epoch_1.pth'
    assert re.search(r'Epoch\(train\) +\[2\]', text) is None
    _resume(setup, work)
    _assert_equal_to_uninterrupted(setup, work)


def test_second_signal_during_preemption_save(setup) -> None:
    """SIGTERM in epoch 2, another to every process while latest.pth is
    written: ignored, the save completes, epoch_1.pth is untouched."""
    cfg = _with_hooks(setup, 'second_signal.py',
                      [dict(type='SignalAtHook', at_iter=15)])
    work = setup['root'] / 'second_signal'
    proc, log = _start(setup, cfg, work, slow='latest.pth')
    before = (work / 'epoch_1.pth').read_bytes()
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == PREEMPTED_EXIT_CODE, \
        log.read_text()[-4000:]
    assert (work / 'epoch_1.pth').read_bytes() == before
    assert load_ckpt(work / 'latest.pth')['meta']['iter'] == 16
    assert (work / 'last_checkpoint').read_text() == 'latest.pth'
    assert not any(is_tmp_checkpoint(n) for n in os.listdir(work))


def test_kill_during_preemption_save_keeps_previous(setup) -> None:
    """SIGTERM in epoch 2, then SIGKILL while latest.pth is written: the
    epoch-1 checkpoint stays the one named, and the resume is exact."""
    cfg = _with_hooks(setup, 'kill_during_save.py',
                      [dict(type='SignalAtHook', at_iter=15)])
    work = setup['root'] / 'kill_during_save'
    proc, log = _start(setup, cfg, work, slow='latest.pth')
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert (work / 'last_checkpoint').read_text() == 'epoch_1.pth'
    assert load_ckpt(work / 'epoch_1.pth')['meta']['iter'] == \
        ITERS_PER_EPOCH
    assert not (work / 'latest.pth').exists()
    out = _resume(setup, work)
    assert 'resumed epoch: 1, iter: 12' in out
    assert 'a checkpoint a stopped run did not finish writing' in out
    _assert_equal_to_uninterrupted(setup, work)


def test_signal_before_the_first_iteration_saves_nothing(setup) -> None:
    cfg = _with_hooks(setup, 'signal_first.py',
                      [dict(type='SignalAtHook', at_iter=-1)])
    work = setup['root'] / 'signal_first'
    proc = run_cmd(train_cmd(cfg, work), cwd=setup['root'],
                   env=setup['env'], expect_ok=False)
    assert proc.returncode == PREEMPTED_EXIT_CODE, proc.stdout[-4000:]
    assert 'nothing new to save' in proc.stdout
    assert not [p for p in work.iterdir() if p.suffix == '.pth' or
                is_tmp_checkpoint(p.name)]


def test_resume_mid_epoch_with_another_batch_size_is_refused(setup):
    cfg = _with_hooks(setup, 'signal_5.py',
                      [dict(type='SignalAtHook', at_iter=5)])
    work = setup['root'] / 'other_batch'
    proc = run_cmd(train_cmd(cfg, work), cwd=setup['root'],
                   env=setup['env'], expect_ok=False)
    assert proc.returncode == PREEMPTED_EXIT_CODE, proc.stdout[-4000:]
    proc = run_cmd(
        train_cmd(setup['cfg'], work, '--resume', '--cfg-options',
                  'train_dataloader.batch_size=4'),
        cwd=setup['root'], env=setup['env'], expect_ok=False)
    assert proc.returncode != 0
    assert 'trained with batch_size 2 x 1 processes = 2 images per ' \
        'iteration, this run uses batch_size 4 x 1 processes = 4' \
        in proc.stdout, proc.stdout[-4000:]
