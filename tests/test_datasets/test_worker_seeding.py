"""Workers' numpy streams: new every epoch, reproducible from the seed.

mmengine's default worker_init_fn re-seeds numpy identically whenever a
worker starts, so non-persistent workers repeat their augmentations every
epoch; ``torch_seeded_worker_init`` follows torch's per-iterator seeds.
"""
import numpy as np
import torch
from mmengine.runner import Runner
from torch.utils.data import Dataset

import selfpatch_mm.datasets  # noqa: F401  (registers the worker init)


class NumpyDraws(Dataset):
    """Each item is one numpy draw, as an augmentation would make it."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return np.random.random_sample()


def _epochs(worker_init_fn, seed=0, epochs=2):
    torch.manual_seed(seed)
    cfg = dict(dataset=NumpyDraws(), batch_size=4, num_workers=2,
               persistent_workers=False,
               sampler=dict(type='DefaultSampler', shuffle=False),
               collate_fn=dict(type='default_collate'))
    if worker_init_fn:
        cfg['worker_init_fn'] = dict(type=worker_init_fn)
    loader = Runner.build_dataloader(cfg, seed=seed)
    return [next(iter(loader)).tolist() for _ in range(epochs)]


def test_mmengine_default_repeats_draws_every_epoch():
    first, second = _epochs(None)
    assert first == second  # the defect this module fixes


def test_torch_seeded_workers_draw_anew_each_epoch_and_reproducibly():
    first, second = _epochs('torch_seeded_worker_init')
    assert first != second
    assert len(set(first)) == 4  # the two workers differ too
    assert _epochs('torch_seeded_worker_init') == [first, second]
    assert _epochs('torch_seeded_worker_init', seed=1)[0] != first
