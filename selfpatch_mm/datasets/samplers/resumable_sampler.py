# Copyright (c) selfpatch_mm contributors. All rights reserved.
from typing import Iterator, Optional, Sized

import torch
from mmengine.dataset import DefaultSampler
from mmpretrain.registry import DATA_SAMPLERS

from .sample_seeded_pipeline import SampleSeededPipeline

__all__ = ['ResumableSampler']


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """mmengine's ``DefaultSampler`` that can start an epoch part-way.

    The order is ``DefaultSampler``'s, index for index. Two additions make
    a mid-epoch resume exact (see
    :class:`~selfpatch_mm.engine.runners.ResumableEpochBasedTrainLoop`):

    * :meth:`skip_next` drops the first samples of this rank's next
      iteration, the ones trained on before the run stopped; ``len()``
      stays the whole epoch's, so schedules and hooks count as before.
    * With ``seed_per_sample=True`` the dataset's pipeline draws its random
      numbers from (seed, epoch, sample index)
      (:class:`SampleSeededPipeline`), so each sample's views do not depend
      on which worker loads it or on what that worker loaded before.

    Args:
        dataset (Sized): The dataset; with ``seed_per_sample`` it needs a
            ``pipeline`` attribute (mmengine's ``BaseDataset``).
        shuffle (bool): Shuffle every epoch. Defaults to True.
        seed (int, optional): Shared by all ranks; the Runner passes
            ``randomness.seed``. Defaults to None (a synced random seed).
        round_up (bool): As ``DefaultSampler``. Defaults to True.
        seed_per_sample (bool): Seed the pipeline per sample. Defaults to
            True.

    Raises:
        TypeError: If ``seed_per_sample`` and the dataset has no
            ``pipeline`` (e.g. a ``ConcatDataset``).
    """

    def __init__(self,
                 dataset: Sized,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True,
                 seed_per_sample: bool = True) -> None:
        super().__init__(dataset, shuffle=shuffle, seed=seed,
                         round_up=round_up)
        self.seed_per_sample = seed_per_sample
        self._skip = 0
        # Shared memory: forked and spawned workers read the epoch the main
        # process sets here, also when they persist across epochs.
        self._epoch_cell = torch.zeros((), dtype=torch.int64).share_memory_()
        if seed_per_sample:
            pipeline = getattr(dataset, 'pipeline', None)
            if pipeline is None:
                raise TypeError(
                    f'ResumableSampler(seed_per_sample=True) seeds the '
                    f'dataset\'s pipeline, but {type(dataset).__name__} has '
                    'no `pipeline` attribute. Wrap a dataset that has one, '
                    'or set train_dataloader.sampler.seed_per_sample=False '
                    '(a mid-epoch resume with worker processes then does '
                    'not repeat the augmentations).')
            if isinstance(pipeline, SampleSeededPipeline):
                pipeline = pipeline.pipeline
            dataset.pipeline = SampleSeededPipeline(pipeline,
                                                    self._epoch_cell,
                                                    self.seed)

    def skip_next(self, num_samples: int) -> None:
        """Leave out the first ``num_samples`` of this rank's next epoch.

        Args:
            num_samples (int): Samples of this rank already trained on.

        Raises:
            ValueError: If it is negative or more than an epoch.
        """
        if not 0 <= num_samples <= self.num_samples:
            raise ValueError(
                f'ResumableSampler.skip_next: {num_samples} is not between 0 '
                f'and the {self.num_samples} samples of an epoch on this '
                'rank.')
        self._skip = int(num_samples)

    def __iter__(self) -> Iterator[int]:
        # Runs when the DataLoader asks for the epoch's first index, in the
        # main process, after every sample of the previous epoch arrived.
        self._epoch_cell.fill_(self.epoch)
        skip, self._skip = self._skip, 0
        indices = list(super().__iter__())
        return iter(indices[skip:])
