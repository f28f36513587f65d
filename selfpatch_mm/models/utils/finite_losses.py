# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Stop a diverged run before its NaN state can reach a checkpoint.

The official loop exits with ``Loss is nan, stopping training``. Here the
check runs on every rank between the loss and the optimizer step, so the
weights (and so every checkpoint) stay finite, and all ranks raise together
instead of the healthy ones waiting forever in the next all-reduce.
"""
from typing import Dict

import torch
from mmengine import dist
from mmengine.logging import MessageHub

__all__ = ['NonFiniteLossError', 'check_finite_losses']


class NonFiniteLossError(FloatingPointError):
    """A loss term is NaN or infinite on some rank."""


def check_finite_losses(log_vars: Dict[str, torch.Tensor]) -> None:
    """Raise on every rank if any rank has a non-finite loss.

    Args:
        log_vars (dict[str, Tensor]): Scalar losses (``parse_losses``
            output: the total ``loss`` and its terms).

    Raises:
        NonFiniteLossError: Naming the iteration, the terms, their values on
            this rank and the ranks they diverged on, and how to resume.
    """
    names = list(log_vars)
    values = torch.stack([v.detach().float().reshape(()) for v in
                          log_vars.values()])
    rank, world = dist.get_rank(), dist.get_world_size()
    bad = values.new_zeros(world, len(names))
    bad[rank] = (~torch.isfinite(values)).float()
    dist.all_reduce(bad, op='sum')  # a no-op in a single process
    if not bad.any():
        return
    terms = [n for j, n in enumerate(names) if bad[:, j].any()]
    # Name the terms when they explain the total (`loss` is their sum).
    terms = [n for n in terms if n != 'loss'] or terms
    where = ', '.join(
        f'{n} (ranks {bad[:, names.index(n)].nonzero().flatten().tolist()}'
        f', here {values[names.index(n)].item()})' for n in terms)
    hub = MessageHub.get_current_instance()
    it, epoch = hub.get_info('iter'), hub.get_info('epoch')
    at = (f'iteration {it + 1} (epoch {epoch + 1})'
          if it is not None and epoch is not None else 'this iteration')
    raise NonFiniteLossError(
        f'Non-finite loss at {at}: {where}. Training stopped before the '
        'optimizer step, so the weights and every checkpoint stay finite. '
        'Resume from the last good checkpoint with `python tools/train.py '
        'CONFIG --resume` (the work dir\'s `last_checkpoint` names it), '
        'after lowering the learning rate or clip_grad.max_norm, or with '
        '`--amp-dtype bf16` if fp16 overflowed.')
