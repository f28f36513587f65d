# Copyright (c) selfpatch_mm contributors. All rights reserved.
from typing import Optional

import torch
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import LOOPS

from .train_position import check_position, per_rank_batch_size

__all__ = ['ResumableEpochBasedTrainLoop']


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` that resumes inside an epoch.

    mmengine restarts an epoch on resume, so a run stopped at iteration 900
    of a 1251-iteration epoch trains those 900 batches again. Here a
    checkpoint written in the middle of an epoch (by
    :class:`~selfpatch_mm.engine.hooks.PreemptionHook` through
    ``SafeCheckpointHook.save_latest``) carries its position, and the
    resumed epoch starts at the next batch: the sampler
    (:class:`~selfpatch_mm.datasets.samplers.ResumableSampler`) leaves out
    the samples already trained on, and the batch index and iteration count
    go on from where they stopped. ``before_train_epoch`` runs again for the
    resumed epoch; the hooks of this package and mmengine's set their state
    from the epoch number there, so running it twice changes nothing.

    Two more things keep a resumed run equal to an uninterrupted one:

    * Each epoch's DataLoader iterator draws its worker seed from a
      generator seeded by (seed, epoch) instead of torch's global one, so
      creating an iterator on resume does not shift the global stream that
      drop path draws from.
    * The position is mapped by samples: a resume must use the same total
      batch (batch size x processes) and dataset size; otherwise it stops
      with an error naming both.

    Args:
        *args, **kwargs: :class:`mmengine.runner.EpochBasedTrainLoop`'s.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._resume_position: Optional[dict] = None

    def set_resume_position(self, position: Optional[dict]) -> None:
        """Continue the resumed epoch at ``position``.

        Called by ``SafeCheckpointHook`` when it loads a checkpoint written
        mid-epoch (``meta['train_position']``; see
        :func:`~selfpatch_mm.engine.runners.train_position.make_position`).

        Args:
            position (dict, optional): The saved position; None to start the
                epoch from its first batch.
        """
        self._resume_position = position

    def _start_batch(self) -> int:
        """The batch the current epoch starts at (once, after a resume)."""
        position, self._resume_position = self._resume_position, None
        if position is None:
            return 0
        return check_position(position, self.runner, self.dataloader,
                              epoch=self._epoch, iteration=self._iter)

    def _seed_iterator(self) -> None:
        # A per-epoch generator: the worker base seed no longer comes from
        # (and advances) torch's global generator.
        seed = self.runner.seed or 0
        self.dataloader.generator = torch.Generator().manual_seed(
            (int(seed) % 2**31) * 100003 + self._epoch)

    def run_epoch(self) -> None:
        """Iterate one epoch, from the resumed batch on after a resume."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        start = self._start_batch()
        if start:
            self.dataloader.sampler.skip_next(
                start * per_rank_batch_size(self.dataloader))
            self.runner.logger.info(
                f'Resuming epoch {self._epoch + 1} at batch {start + 1} of '
                f'{len(self.dataloader)} (iteration {self._iter + 1}).')
        self._seed_iterator()
        for idx, data_batch in enumerate(self.dataloader, start):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
