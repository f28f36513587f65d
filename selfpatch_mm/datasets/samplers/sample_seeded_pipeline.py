# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Data-pipeline randomness as a function of (seed, epoch, sample).

DataLoader workers draw their augmentations from generators that run on
from one sample to the next (torch seeds each worker once per iterator, and
``torch_seeded_worker_init`` seeds numpy and ``random`` from it). A run that
stops in the middle of an epoch cannot restore those streams: they live in
processes that are gone, and which worker drew which batch depends on the
number of workers. Seeding numpy and ``random`` (and torch's CPU generator,
restored afterwards) from the sample itself makes each sample's views the
same whether it is loaded in the main process or any worker, first or after
a resume, so a resumed epoch sees exactly the batches it would have seen.
"""
from typing import Any, Callable, Dict

import numpy as np
import random
import torch

__all__ = ['sample_seed', 'SampleSeededPipeline']


def sample_seed(seed: int, epoch: int, index: int) -> np.ndarray:
    """The seed words of one sample's augmentation.

    Args:
        seed (int): The run's seed (``randomness.seed``, shared by all
            ranks).
        epoch (int): The training epoch.
        index (int): The sample's dataset index.

    Returns:
        np.ndarray: Four uint32 words from numpy's ``SeedSequence``, whose
        mixing keeps neighbouring (seed, epoch, index) triples unrelated.
    """
    return np.random.SeedSequence(
        [int(seed) % 2**32, int(epoch), int(index)]).generate_state(4)


class SampleSeededPipeline:
    """A dataset pipeline that seeds the generators from each sample.

    :class:`~selfpatch_mm.datasets.samplers.ResumableSampler` puts it around
    its dataset's ``pipeline``. The epoch comes from a one-element tensor in
    shared memory that the sampler sets in the main process before it hands
    out the epoch's first index, so persistent workers see it too.

    numpy and ``random`` are left at the sample's state (so a
    ``BaseDataset`` re-fetch after a corrupt image draws its replacement
    deterministically too); torch's CPU generator, which drop path also
    draws from when ``num_workers=0``, is restored after the call.

    Args:
        pipeline (callable): The dataset's pipeline (``Compose``).
        epoch_cell (Tensor): Shared ``int64`` scalar holding the epoch.
        seed (int): The run's seed.
    """

    def __init__(self, pipeline: Callable, epoch_cell: torch.Tensor,
                 seed: int) -> None:
        self.pipeline = pipeline
        self.epoch_cell = epoch_cell
        self.seed = int(seed)

    def __call__(self, results: Dict[str, Any]) -> Any:
        words = sample_seed(self.seed, int(self.epoch_cell),
                            results['sample_idx'])
        np.random.seed(words)
        random.seed(int(words[0]) << 32 | int(words[1]))
        torch_state = torch.default_generator.get_state()
        torch.default_generator.manual_seed(
            int(words[2]) << 32 | int(words[3]))
        try:
            return self.pipeline(results)
        finally:
            torch.default_generator.set_state(torch_state)

    def __getattr__(self, name: str) -> Any:
        # ``dataset.pipeline.transforms`` and the like still work
        if name == 'pipeline':  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.pipeline, name)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(seed={self.seed}, {self.pipeline!r})'
