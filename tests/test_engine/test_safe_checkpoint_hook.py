"""SafeCheckpointHook in an in-process mmengine Runner (a toy model, a
second per run): atomic files, relative ``last_checkpoint``, resume
fallback, rotation, refusal of non-finite states, a full disk, RNG
states."""
import errno
import os
import random
import shutil
from pathlib import Path
from typing import List, Optional

import numpy as np
import pytest
import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from toy_model import ToyModel  # conftest.py puts it on sys.path

from selfpatch_mm.checkpoint import load_checkpoint_file
from selfpatch_mm.engine import SafeCheckpointHook
from selfpatch_mm.checkpoint.checkpoint_files import (
    check_checkpoint_file, find_resumable_checkpoint, is_tmp_checkpoint,
    read_last_checkpoint)
from selfpatch_mm.utils.rng_state import get_rng_state, set_rng_state

_RUNS = [0]


class BreakWeightsHook(Hook):
    """Puts a NaN into the weights after epoch ``epoch`` trained."""

    priority = 'HIGHEST'

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            with torch.no_grad():
                runner.model.linear.weight[0, 0] = float('nan')


def _runner(work_dir: Path,
            max_epochs: int,
            resume: bool = False,
            max_keep_ckpts: int = 2,
            custom_hooks: Optional[List[Hook]] = None) -> Runner:
    _RUNS[0] += 1
    data = [dict(inputs=torch.randn(4, generator=torch.Generator().manual_seed(
        i))) for i in range(8)]
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        experiment_name=f'safe_ckpt_{os.getpid()}_{_RUNS[0]}',
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=SafeCheckpointHook(
                interval=1, max_keep_ckpts=max_keep_ckpts),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=custom_hooks,
        resume=resume,
        randomness=dict(seed=0),
        default_scope='mmengine')


def _files(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def _last(folder: Path) -> str:
    return (folder / 'last_checkpoint').read_text()


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> Path:
    """A work dir after 3 epochs, keeping the last 2 checkpoints."""
    work = tmp_path_factory.mktemp('safe_ckpt') / 'work'
    _runner(work, 3).train()
    return work


def test_atomic_files_relative_last_checkpoint_rotation(trained: Path):
    names = _files(trained)
    assert [n for n in names if n.endswith('.pth')] == \
        ['epoch_2.pth', 'epoch_3.pth']
    assert not any(is_tmp_checkpoint(n) for n in os.listdir(trained))
    assert _last(trained) == 'epoch_3.pth'
    ckpt = load_checkpoint_file(str(trained / 'epoch_3.pth'))
    assert ckpt['meta']['epoch'] == 3
    assert ckpt['message_hub']['runtime_info']['keep_ckpt_ids'] == [2, 3]
    (state, ) = ckpt['rng_state']  # one process
    assert set(state) == {'torch', 'cuda', 'numpy', 'random'}


def test_moved_work_dir_resumes_from_itself(trained: Path, tmp_path: Path):
    moved = tmp_path / 'moved'
    shutil.copytree(trained, moved)
    runner = _runner(moved, 4, resume=True)
    runner.train()
    assert runner.iter == 8  # 2 iterations per epoch; epoch 4 only ran
    assert _files(moved).count('epoch_4.pth') == 1
    assert 'epoch_2.pth' not in _files(moved)  # rotated after epoch 4
    assert _last(moved) == 'epoch_4.pth'
    # the original is untouched
    assert _last(trained) == 'epoch_3.pth'


def test_absolute_last_checkpoint_of_a_copied_work_dir(trained: Path,
                                                       tmp_path: Path):
    """mmengine's own hook writes absolute paths: a copy must still
    resume from its own files, not from the original's."""
    copy = tmp_path / 'copy'
    shutil.copytree(trained, copy)
    (copy / 'last_checkpoint').write_text(str(trained / 'epoch_3.pth'))
    assert read_last_checkpoint(str(copy)) == str(copy / 'epoch_3.pth')
    (copy / 'epoch_3.pth').unlink()  # not in the copy: the path is used
    assert read_last_checkpoint(str(copy)) == str(trained / 'epoch_3.pth')


def test_newer_complete_checkpoint_beats_last_checkpoint(trained: Path,
                                                         tmp_path: Path):
    """Killed after renaming epoch_3.pth into place but before rewriting
    last_checkpoint: resume takes the complete, newer epoch_3.pth."""
    work = tmp_path / 'work'
    shutil.copytree(trained, work)  # keeps the modification times
    (work / 'last_checkpoint').write_text('epoch_2.pth')
    assert find_resumable_checkpoint(str(work)) == str(work / 'epoch_3.pth')
    # a higher-numbered file of an earlier experiment (older than the named
    # one) does not win over last_checkpoint
    stale = work / 'epoch_9.pth'
    shutil.copy2(work / 'epoch_3.pth', stale)
    os.utime(stale, (1, 1))
    (work / 'last_checkpoint').write_text('epoch_3.pth')
    assert find_resumable_checkpoint(str(work)) == str(work / 'epoch_3.pth')


def test_latest_file_takes_its_place_by_time(trained: Path, tmp_path: Path):
    """latest.pth has no step in its name: named by last_checkpoint it is
    the resume point; written after the named file (a kill before
    last_checkpoint was rewritten) it goes first; when it is cut short the
    newest numbered file older than it is next."""
    work = tmp_path / 'work'
    shutil.copytree(trained, work)
    latest = work / 'latest.pth'
    shutil.copy2(work / 'epoch_3.pth', latest)
    t3 = (work / 'epoch_3.pth').stat().st_mtime
    os.utime(latest, (t3 + 10, t3 + 10))
    (work / 'last_checkpoint').write_text('latest.pth')
    assert find_resumable_checkpoint(str(work)) == str(latest)
    (work / 'last_checkpoint').write_text('epoch_3.pth')
    assert find_resumable_checkpoint(str(work)) == str(latest)
    os.utime(latest, (t3 - 10, t3 - 10))  # older than the named file
    assert find_resumable_checkpoint(str(work)) == str(work / 'epoch_3.pth')
    os.utime(latest, (t3 + 10, t3 + 10))
    (work / 'last_checkpoint').write_text('latest.pth')
    os.truncate(latest, latest.stat().st_size // 2)
    assert find_resumable_checkpoint(str(work)) == str(work / 'epoch_3.pth')


@pytest.mark.parametrize('damage', ['half', 'zero', 'garbage'])
def test_resume_falls_back_to_newest_readable(trained: Path, tmp_path: Path,
                                              damage: str):
    work = tmp_path / 'work'
    shutil.copytree(trained, work)
    newest = work / 'epoch_3.pth'
    if damage == 'half':
        os.truncate(newest, newest.stat().st_size // 2)
    elif damage == 'zero':
        newest.write_bytes(b'')
    else:
        newest.write_bytes(b'not a checkpoint\n' * 100)
    assert check_checkpoint_file(str(newest)) is not None
    runner = _runner(work, 4, resume=True)
    logs = []
    handler = _capture(runner.logger, logs)
    runner.train()
    runner.logger.removeHandler(handler)
    text = '\n'.join(logs)
    assert f'Cannot resume from {newest}' in text, text
    assert f'Resuming from {work / "epoch_2.pth"}' in text, text
    # resumed after epoch 2: epochs 3 and 4 ran and replaced the bad file
    assert runner.iter == 8
    assert load_checkpoint_file(str(newest))['meta']['epoch'] == 3
    assert _last(work) == 'epoch_4.pth'


def test_empty_last_checkpoint_and_nothing_readable(trained: Path,
                                                    tmp_path: Path):
    work = tmp_path / 'work'
    shutil.copytree(trained, work)
    (work / 'last_checkpoint').write_text('')
    logger = MMLogger.get_instance('safe_ckpt_test')
    logs = []
    _capture(logger, logs)
    assert find_resumable_checkpoint(str(work), logger=logger) == \
        str(work / 'epoch_3.pth')
    assert 'last_checkpoint is empty' in '\n'.join(logs)
    for name in ('epoch_2.pth', 'epoch_3.pth'):
        (work / name).write_bytes(b'')
    assert find_resumable_checkpoint(str(work), logger=logger) is None
    # resume with no good checkpoint starts from scratch, without a crash
    runner = _runner(work, 1, resume=True)
    runner.train()
    assert runner.iter == 2 and _last(work) == 'epoch_1.pth'


def test_non_finite_state_is_not_saved(tmp_path: Path):
    work = tmp_path / 'work'
    runner = _runner(
        work, 3, max_keep_ckpts=1, custom_hooks=[BreakWeightsHook(2)])
    with pytest.raises(RuntimeError, match=r'Refusing to save .*epoch 2.*'
                       r'NaN or Inf .*linear\.weight'):
        runner.train()
    # epoch 1 survives: not rotated away, still named, no partial file
    assert _files(work).count('epoch_1.pth') == 1
    assert 'epoch_2.pth' not in _files(work)
    assert not any(is_tmp_checkpoint(n) for n in os.listdir(work))
    assert _last(work) == 'epoch_1.pth'
    assert check_checkpoint_file(str(work / 'epoch_1.pth')) is None


def test_full_disk_stops_with_clear_error(tmp_path: Path, monkeypatch):
    work = tmp_path / 'work'
    put = LocalBackend.put
    calls = []

    def full_disk_put(self, obj, filepath):
        calls.append(filepath)
        if len(calls) == 2:  # the second checkpoint: half, then ENOSPC
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', full_disk_put)
    runner = _runner(work, 3, max_keep_ckpts=1)
    with pytest.raises(OSError) as info:
        runner.train()
    msg = str(info.value)
    assert info.value.errno == errno.ENOSPC
    assert f'Could not write checkpoint {work / "epoch_2.pth"}' in msg, msg
    assert 'the disk is full' in msg and 'epoch_1.pth is intact' in msg, msg
    assert is_tmp_checkpoint(Path(calls[1]).name)
    assert not Path(calls[1]).exists()  # the partial file is gone
    assert _files(work).count('epoch_1.pth') == 1
    assert 'epoch_2.pth' not in _files(work)
    assert _last(work) == 'epoch_1.pth'
    assert check_checkpoint_file(str(work / 'epoch_1.pth')) is None


def test_leftover_tmp_file_is_removed(trained: Path, tmp_path: Path):
    work = tmp_path / 'work'
    shutil.copytree(trained, work)
    leftover = work / '.epoch_4.pth.tmp-12345'
    leftover.write_bytes(b'partial')
    _runner(work, 4, resume=True).train()
    assert not leftover.exists()


def test_rng_state_round_trip():
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    state = get_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def _capture(logger, lines: list):
    """Collect ``logger``'s messages into ``lines``."""
    import logging

    class ListHandler(logging.Handler):

        def emit(self, record):
            lines.append(record.getMessage())

    handler = ListHandler()
    logger.addHandler(handler)
    return handler


def test_nonfinite_keys_known_answers() -> None:
    """NaN, +-Inf and an fp16 Inf are found; large finite values whose sum
    overflows (the fast path's false alarm) are not."""
    from selfpatch_mm.checkpoint.checkpoint_files import nonfinite_keys
    state = dict(
        ok=torch.ones(3),
        nan=torch.tensor([1.0, float('nan')]),
        infs=torch.tensor([float('inf'), -float('inf')]),
        big=torch.full((10, ), 3e38),
        half=torch.tensor([float('inf')], dtype=torch.float16),
        ints=torch.arange(3))
    assert nonfinite_keys(state) == ['nan', 'infs', 'half']
