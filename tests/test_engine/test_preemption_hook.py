"""PreemptionHook's timer and ResumableEpochBasedTrainLoop in one process:
a time-based latest.pth inside an epoch changes nothing in training, and a
resume from it ends with the weights of the run that wrote it; a signal
during validation stops the run before the next epoch."""
import os
import signal
from pathlib import Path
from typing import Optional

import pytest
import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.hooks import Hook
from mmengine.runner import Runner
from toy_model import ToyModel  # conftest.py puts it on sys.path

import selfpatch_mm.engine  # noqa: F401  (registers the loop and hooks)
from selfpatch_mm.checkpoint import load_checkpoint_file
from selfpatch_mm.engine import PreemptionHook, SafeCheckpointHook
from selfpatch_mm.engine.hooks import PREEMPTED_EXIT_CODE, preemption_hook

ITERS_PER_EPOCH = 4
_RUNS = [0]


def _runner(work: Path, every: Optional[float] = None,
            load_from: Optional[str] = None) -> Runner:
    _RUNS[0] += 1
    torch.manual_seed(0)  # the model is built before the Runner seeds
    data = [dict(inputs=torch.randn(4, generator=torch.Generator().manual_seed(
        i))) for i in range(2 * ITERS_PER_EPOCH)]
    return Runner(
        model=ToyModel(),
        work_dir=str(work),
        experiment_name=f'preemption_{os.getpid()}_{_RUNS[0]}',
        train_dataloader=dict(
            dataset=data,
            # a list has no pipeline: the sampler only orders and skips
            sampler=dict(type='mmpretrain.ResumableSampler',
                         seed_per_sample=False),
            batch_size=2,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1,
                                          momentum=0.9)),
        train_cfg=dict(type='mmpretrain.ResumableEpochBasedTrainLoop',
                       max_epochs=2),
        default_hooks=dict(
            checkpoint=SafeCheckpointHook(interval=1, max_keep_ckpts=-1),
            preemption=PreemptionHook(save_every_minutes=every),
            logger=dict(type='LoggerHook', interval=1)),
        resume=load_from is not None,
        load_from=load_from,
        randomness=dict(seed=0),
        default_scope='mmengine')


def _weights(path: Path) -> dict:
    return load_checkpoint_file(str(path))['state_dict']


@pytest.mark.parametrize('step,batches', [(30, 3), (25, 4)],
                         ids=['inside-epoch-2', 'after-its-last-batch'])
def test_timed_latest_and_exact_resume(tmp_path: Path, monkeypatch,
                                       step: int, batches: int) -> None:
    """The newest timed latest.pth is after batch 3 of epoch 2 or, with
    another clock, after its last batch (before the epoch's end hooks):
    the resume trains the rest, or nothing, then ends the epoch."""
    straight = tmp_path / 'straight'
    _runner(straight).train()

    # a clock that moves `step` seconds per look, a save every minute
    clock = iter(range(0, 10**6, step))
    monkeypatch.setattr(preemption_hook.time, 'monotonic',
                        lambda: float(next(clock)))
    timed = tmp_path / 'timed'
    runner = _runner(timed, every=1)
    runner.train()
    assert runner.iter == 2 * ITERS_PER_EPOCH
    final = _weights(timed / 'epoch_2.pth')
    want = _weights(straight / 'epoch_2.pth')
    # saving inside the run changes nothing it trains
    assert all(torch.equal(want[k], final[k]) for k in want)

    latest = load_checkpoint_file(str(timed / 'latest.pth'))
    position = latest['meta']['train_position']
    assert (position['epoch'], position['batches']) == (1, batches)
    assert latest['meta']['iter'] == ITERS_PER_EPOCH + batches

    monkeypatch.undo()
    resumed = tmp_path / 'resumed'
    runner = _runner(resumed, load_from=str(timed / 'latest.pth'))
    runner.train()
    assert runner.iter == 2 * ITERS_PER_EPOCH
    got = _weights(resumed / 'epoch_2.pth')
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_mmengine_loop_refuses_a_mid_epoch_checkpoint(tmp_path: Path,
                                                      monkeypatch) -> None:
    clock = iter(range(0, 10**6, 25))
    monkeypatch.setattr(preemption_hook.time, 'monotonic',
                        lambda: float(next(clock)))
    work = tmp_path / 'timed'
    _runner(work, every=1).train()
    monkeypatch.undo()
    runner = _runner(tmp_path / 'other', load_from=str(work / 'latest.pth'))
    runner._train_loop = dict(type='EpochBasedTrainLoop', max_epochs=2)
    with pytest.raises(RuntimeError, match='restarts epochs and would train '
                       'those batches again'):
        runner.train()


class _SignalDuringValidation(Hook):
    """SIGTERM to this process while validating after epoch 1."""

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None) -> None:
        if runner.epoch == 1 and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)


class _Count(BaseMetric):

    def process(self, data_batch, data_samples) -> None:
        self.results.append(len(data_samples))

    def compute_metrics(self, results) -> dict:
        return dict(count=sum(results))


def test_signal_during_validation_stops_before_the_next_epoch(
        tmp_path: Path) -> None:
    """The epoch-1 checkpoint holds the state: nothing more is written, the
    run stops with 75 before epoch 2 trains."""
    work = tmp_path / 'val'
    runner = _runner(work)
    runner._val_dataloader = dict(
        dataset=[dict(inputs=torch.randn(4)) for _ in range(4)],
        sampler=dict(type='DefaultSampler', shuffle=False), batch_size=2,
        num_workers=0, collate_fn=dict(type='default_collate'))
    runner._val_evaluator = Evaluator(_Count())
    runner._val_loop = dict(type='ValLoop')
    runner.register_hook(_SignalDuringValidation())
    with pytest.raises(SystemExit) as stop:
        runner.train()
    assert stop.value.code == PREEMPTED_EXIT_CODE
    assert runner.iter == ITERS_PER_EPOCH  # epoch 2 never trained
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
    assert (work / 'last_checkpoint').read_text() == 'epoch_1.pth'
