"""ResumableSampler: DefaultSampler's order, a part-way start, and a
pipeline whose draws belong to the sample, not to the process loading it."""
import subprocess
import time

import numpy as np
import pytest
import torch
from mmengine.dataset import BaseDataset, DefaultSampler
from mmengine.runner import Runner
from torch.utils.data import Dataset

import selfpatch_mm.datasets  # noqa: F401  (registers the sampler)
from selfpatch_mm.datasets import ResumableSampler, sample_seed


class Draws(BaseDataset):
    """Each item: its index and two numpy draws and a torch draw, as an
    augmentation would make them."""

    def __init__(self, n: int = 12) -> None:
        self.n = n
        super().__init__(pipeline=[self._augment], serialize_data=False,
                         lazy_init=False)

    def load_data_list(self):
        return [dict(i=i) for i in range(self.n)]

    @staticmethod
    def _augment(results):
        return [results['sample_idx'], *np.random.random_sample(2),
                float(torch.rand(()))]


def _as_list(batch: list) -> list:
    return batch


def _loader(num_workers: int, persistent: bool = False, n: int = 12):
    cfg = dict(dataset=Draws(n), batch_size=3, num_workers=num_workers,
               persistent_workers=persistent,
               sampler=dict(type='mmpretrain.ResumableSampler', shuffle=True),
               collate_fn=_as_list)
    loader = Runner.build_dataloader(cfg, seed=7)
    # as ResumableEpochBasedTrainLoop does: the worker base seed does not
    # come from torch's global generator
    loader.generator = torch.Generator().manual_seed(0)
    return loader


def _epoch(loader, epoch: int, skip: int = 0) -> list:
    loader.sampler.set_epoch(epoch)
    loader.sampler.skip_next(skip)
    return [row for batch in loader for row in batch]


def test_order_is_default_samplers_and_skip_drops_a_prefix():
    data = Draws(10)
    ours = ResumableSampler(data, seed=3, seed_per_sample=False)
    theirs = DefaultSampler(data, seed=3)
    for epoch in range(3):
        ours.set_epoch(epoch)
        theirs.set_epoch(epoch)
        assert list(ours) == list(theirs)
        ours.skip_next(4)
        assert list(ours) == list(theirs)[4:]
        assert len(ours) == 10  # an epoch still counts whole
    assert list(ours) == list(theirs)  # the skip is for one epoch only
    with pytest.raises(ValueError, match='between 0 and the 10 samples'):
        ours.skip_next(11)


def test_draws_belong_to_the_sample_whoever_loads_it():
    """The same rows in the main process, in 2 workers and in 3 persistent
    ones, and a skipped epoch's rest equals the whole epoch's tail; another
    epoch draws other numbers."""
    main = [_epoch(_loader(0), e) for e in range(2)]
    for loader in (_loader(2), _loader(3, persistent=True)):
        assert [_epoch(loader, e) for e in range(2)] == main
    assert _epoch(_loader(2), 1, skip=6) == main[1][6:]
    by_index = [{r[0]: r[1:] for r in rows} for rows in main]
    assert all(by_index[0][i] != by_index[1][i] for i in range(12))
    # the numpy draws are those of the documented seed
    idx, a, b, _ = main[1][0]
    np.random.seed(sample_seed(7, 1, idx))
    assert [a, b] == list(np.random.random_sample(2))


def test_pipeline_leaves_the_main_torch_generator_alone():
    """Drop path draws from torch's global generator in the main process;
    loading samples there (num_workers=0) must not move it."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _epoch(_loader(0), 0)
    assert torch.equal(torch.rand(3), expected)


def test_dataset_without_pipeline_is_refused():
    class Plain(Dataset):
        def __len__(self):
            return 3

    with pytest.raises(TypeError, match='seed_per_sample=False'):
        ResumableSampler(Plain(), seed=0)


class SlowDraws(Draws):
    def __getitem__(self, idx):
        time.sleep(0.2)
        return super().__getitem__(idx)


def test_workers_outlive_sigusr1_to_the_job():
    """SIGUSR1 sent to the workers (Slurm's --signal reaches every process
    of a step) leaves the epoch intact.

    SIGTERM from another process is taken by a thread of
    ``torch_seeded_worker_init`` that sees the sender, but a thread that
    each worker starts with every signal unblocked can receive it instead
    (and the worker then dies, as without this init), so it is not tested
    here; see docs/checkpoints_and_resume.md."""
    cfg = dict(dataset=SlowDraws(12), batch_size=3, num_workers=2,
               persistent_workers=False,
               sampler=dict(type='mmpretrain.ResumableSampler', shuffle=False),
               worker_init_fn=dict(type='torch_seeded_worker_init'),
               collate_fn=_as_list)
    loader = Runner.build_dataloader(cfg, seed=0)
    it = iter(loader)
    # a batch from each worker: both have run their worker_init_fn
    rows = [row for _ in range(2) for row in next(it)]
    pids = [str(w.pid) for w in it._workers]
    subprocess.run(['kill', '-USR1', *pids], check=True)
    rows += [row for batch in it for row in batch]
    assert [r[0] for r in rows] == list(range(12))
