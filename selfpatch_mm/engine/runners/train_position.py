# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Where a training run stands inside an epoch, as checkpoint data.

A mid-epoch checkpoint stores its position as ``meta['train_position']``:
how many batches of which epoch were trained, with the batch size, number of
processes and epoch length they were trained with. A resume maps it by
samples: the first ``batches x batch_size x world_size`` positions of the
epoch's order are done (the ranks' shares of ``DefaultSampler``'s order
interleave, so the samples trained on are always a prefix). That holds for
any split of the same total batch over processes; a different total batch,
or a different number of batches per epoch, would change the iteration
count and the schedules, so it is refused.
"""
from typing import Dict

__all__ = ['per_rank_batch_size', 'make_position', 'check_position']


def per_rank_batch_size(dataloader) -> int:
    """The batch size of one process's ``dataloader``."""
    if dataloader.batch_size is not None:
        return int(dataloader.batch_size)
    return int(dataloader.batch_sampler.batch_size)


def make_position(runner, batches: int) -> Dict[str, int]:
    """The position after ``batches`` batches of the current epoch.

    Args:
        runner (Runner): The training runner.
        batches (int): Batches of ``runner.epoch`` trained so far.

    Returns:
        dict: ``epoch``, ``batches``, ``iter`` (iterations of the run done),
        ``batch_size`` (per process), ``world_size`` and
        ``batches_per_epoch``.
    """
    loader = runner.train_dataloader
    return dict(
        epoch=int(runner.epoch),
        batches=int(batches),
        iter=int(runner.iter) + 1,
        batch_size=per_rank_batch_size(loader),
        world_size=int(runner.world_size),
        batches_per_epoch=len(loader))


def check_position(position: Dict[str, int], runner, dataloader, epoch: int,
                   iteration: int) -> int:
    """The batch to resume the epoch at, after checking the position fits.

    Args:
        position (dict): :func:`make_position` output from the checkpoint.
        runner (Runner): The resumed runner.
        dataloader (DataLoader): This run's training loader.
        epoch (int): The resumed epoch.
        iteration (int): The resumed iteration count.

    Returns:
        int: ``position['batches']``.

    Raises:
        RuntimeError: If the total batch, the epoch length, or the
            epoch/iteration of the checkpoint's meta do not match; or if the
            sampler cannot skip samples.
    """
    batch = per_rank_batch_size(dataloader)
    world = int(runner.world_size)
    saved_total = position['batch_size'] * position['world_size']
    if batch * world != saved_total:
        raise RuntimeError(
            f'Cannot resume inside epoch {epoch + 1}: the checkpoint was '
            f'trained with batch_size {position["batch_size"]} x '
            f'{position["world_size"]} processes = {saved_total} images per '
            f'iteration, this run uses batch_size {batch} x {world} '
            f'processes = {batch * world}. Resume with the same total batch '
            '(train_dataloader.batch_size x number of GPUs), or resume from '
            'an epoch checkpoint (epoch_N.pth).')
    if len(dataloader) != position['batches_per_epoch']:
        raise RuntimeError(
            f'Cannot resume inside epoch {epoch + 1}: the checkpoint\'s '
            f'epochs had {position["batches_per_epoch"]} iterations, this '
            f'run\'s have {len(dataloader)}. The dataset or drop_last '
            'changed; resume from an epoch checkpoint instead.')
    if position['epoch'] != epoch or position['iter'] != iteration:
        raise RuntimeError(
            f'The checkpoint\'s position (epoch {position["epoch"] + 1}, '
            f'iteration {position["iter"]}) disagrees with its meta (epoch '
            f'{epoch + 1}, iteration {iteration}); the file was edited or '
            'written by another tool.')
    if not hasattr(dataloader.sampler, 'skip_next'):
        raise RuntimeError(
            f'Resuming inside epoch {epoch + 1} needs a sampler that can '
            f'skip the samples already trained on; '
            f'{type(dataloader.sampler).__name__} cannot. Set '
            "train_dataloader.sampler.type='ResumableSampler'.")
    return int(position['batches'])
