"""The pretraining configs keep a checkpoint of at most an epoch ago, stop
cleanly on the cluster's signals, and resume inside an epoch; the rule that
maps a saved position onto a resumed run."""
from pathlib import Path
from types import SimpleNamespace

import pytest
from mmengine.config import Config

from selfpatch_mm.engine.runners.train_position import check_position

CONFIGS = sorted(
    p for p in (Path(__file__).resolve().parents[2] / 'configs' /
                'selfpatch').glob('*.py'))


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_pretraining_configs_save_every_epoch(path: Path) -> None:
    cfg = Config.fromfile(str(path))
    ckpt = cfg.default_hooks.checkpoint
    assert ckpt.type == 'SafeCheckpointHook'
    assert ckpt.get('by_epoch', True)
    # a numbered file every epoch, or latest.pth in the epochs between
    assert ckpt.interval == 1 or ckpt.save_latest is True
    stop = cfg.default_hooks.preemption
    assert stop.type == 'PreemptionHook'
    assert {'SIGTERM', 'SIGUSR1'} <= set(stop.signals)
    assert cfg.train_cfg.type == 'ResumableEpochBasedTrainLoop'
    assert cfg.train_dataloader.sampler.type == 'ResumableSampler'


class _Loader:
    def __init__(self, batch: int, batches: int, skips: bool = True):
        self.batch_size, self._len = batch, batches
        self.sampler = SimpleNamespace(skip_next=print) if skips else \
            object()

    def __len__(self) -> int:
        return self._len


POSITION = dict(epoch=3, batches=7, iter=3 * 20 + 7, batch_size=64,
                world_size=8, batches_per_epoch=20)


def _check(batch: int, world: int, batches: int = 20, skips: bool = True,
           **changes) -> int:
    return check_position(dict(POSITION, **changes),
                          SimpleNamespace(world_size=world),
                          _Loader(batch, batches, skips), epoch=3,
                          iteration=67)


def test_position_maps_by_samples_onto_the_same_total_batch() -> None:
    assert _check(64, 8) == 7
    assert _check(128, 4) == 7  # 8 x 64 = 4 x 128: the same prefix is done


def test_position_refuses_another_total_batch_naming_both() -> None:
    with pytest.raises(RuntimeError, match=r'batch_size 64 x 8 processes = '
                       r'512 images per iteration, this run uses batch_size '
                       r'64 x 4 processes = 256'):
        _check(64, 4)


def test_position_refuses_another_epoch_length() -> None:
    with pytest.raises(RuntimeError, match='epochs had 20 iterations, this '
                       "run's have 25"):
        _check(64, 8, batches=25)


def test_position_refuses_a_meta_it_does_not_match() -> None:
    with pytest.raises(RuntimeError, match='disagrees with its meta'):
        _check(64, 8, iter=66)


def test_position_needs_a_sampler_that_skips() -> None:
    with pytest.raises(RuntimeError, match="sampler.type='ResumableSampler'"):
        _check(64, 8, skips=False)


def test_preemption_hook_rejects_bad_arguments() -> None:
    from selfpatch_mm.engine.hooks import PreemptionHook
    with pytest.raises(ValueError, match="unknown signal 'SIGFOO'"):
        PreemptionHook(signals=['SIGTERM', 'SIGFOO'])
    with pytest.raises(ValueError, match='save_every_minutes must be a '
                       'positive number, got 0'):
        PreemptionHook(save_every_minutes=0)
    assert [s.name for s in PreemptionHook(signals=[10, 'SIGINT']).signals
            ] == ['SIGUSR1', 'SIGINT']
