"""SafeCheckpointHook's ``save_best``: the new best file is in place before
the previous one goes, so a crash or a full disk during the write keeps the
best model of the run."""
import errno
import os
from pathlib import Path
from typing import List

import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.fileio.backends import LocalBackend
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from selfpatch_mm.checkpoint import load_checkpoint_file
from selfpatch_mm.engine import SafeCheckpointHook
from selfpatch_mm.checkpoint.checkpoint_files import (check_checkpoint_file,
                                                      is_tmp_checkpoint)

# the validation score after epochs 1, 2, 3, 4 (only 1, 2 and 3 improve)
SCORES = [0.5, 0.7, 0.9, 0.6]


class ToyModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else [out]


class ScriptedMetric(BaseMetric):
    """``acc`` of validation ``i`` is ``SCORES[i]``, whatever the model."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def process(self, data_batch, data_samples) -> None:
        self.results.append(0)

    def compute_metrics(self, results: list) -> dict:
        self.calls += 1
        return dict(acc=SCORES[self.calls - 1])


def _runner(work: Path, run: int) -> Runner:
    data = [dict(inputs=torch.full((4, ), float(i))) for i in range(4)]
    loader = dict(dataset=data, sampler=dict(type='DefaultSampler',
                                             shuffle=False),
                  batch_size=2, num_workers=0,
                  collate_fn=dict(type='default_collate'))
    return Runner(
        model=ToyModel(), work_dir=str(work),
        experiment_name=f'safe_best_{os.getpid()}_{run}',
        train_dataloader=loader, val_dataloader=loader,
        val_evaluator=[ScriptedMetric()], val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=len(SCORES)),
        default_hooks=dict(checkpoint=SafeCheckpointHook(
            interval=1, max_keep_ckpts=1, save_best='acc', rule='greater')),
        default_scope='mmengine')


def _best(work: Path) -> List[str]:
    return sorted(n for n in os.listdir(work) if n.startswith('best_'))


def test_best_is_replaced_only_when_better(tmp_path: Path):
    work = tmp_path / 'work'
    runner = _runner(work, 0)
    runner.train()
    # epoch 4 scored worse and left epoch 3's best alone
    assert _best(work) == ['best_acc_epoch_3.pth']
    best = work / 'best_acc_epoch_3.pth'
    assert check_checkpoint_file(str(best)) is None
    assert load_checkpoint_file(str(best))['meta']['epoch'] == 3
    assert runner.message_hub.get_info('best_score') == 0.9
    assert not any(is_tmp_checkpoint(n) for n in os.listdir(work))
    # the last checkpoint names the best file, for a resume
    last = load_checkpoint_file(str(work / 'epoch_4.pth'))
    assert last['message_hub']['runtime_info']['best_ckpt'] == str(best)


def test_full_disk_during_best_write_keeps_previous_best(
        tmp_path: Path, monkeypatch):
    work = tmp_path / 'work'
    put = LocalBackend.put
    writes = []

    def full_disk_put(self, obj, filepath):
        writes.append(Path(filepath).name)
        if 'best_acc_epoch_2' in filepath:  # half the file, then ENOSPC
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', full_disk_put)
    runner = _runner(work, 1)
    with pytest.raises(OSError) as info:
        runner.train()
    msg = str(info.value)
    assert info.value.errno == errno.ENOSPC
    assert f'Could not write checkpoint {work / "best_acc_epoch_2.pth"}: ' \
        'the disk is full' in msg, msg
    assert f'{work / "best_acc_epoch_1.pth"} is intact' in msg, msg
    # mmengine would have removed best_acc_epoch_1.pth before this write
    assert any(is_tmp_checkpoint(n) for n in writes if 'epoch_2' in n)
    assert _best(work) == ['best_acc_epoch_1.pth']
    best = work / 'best_acc_epoch_1.pth'
    assert check_checkpoint_file(str(best)) is None
    assert load_checkpoint_file(str(best))['meta']['epoch'] == 1
    assert not any(is_tmp_checkpoint(n) for n in os.listdir(work))
    assert runner.message_hub.get_info('best_score') == 0.5
    assert runner.message_hub.get_info('best_ckpt') == str(best)
