# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Dataloader workers whose numpy / ``random`` streams change every epoch.

mmengine's default ``worker_init_fn`` seeds numpy and ``random`` with
``num_workers * rank + worker_id + seed``: the same numbers every time a
worker starts. Without ``persistent_workers`` workers restart every epoch,
so a numpy-driven augmentation (``DINOMultiCrop``) would repeat the same
crops, flips and jitters each epoch. The official DINO/SelfPatch loaders
use torch's default seeding instead: every new iterator draws a base seed
from the main process's torch generator, so the streams change per epoch
and per worker and follow ``randomness.seed`` (and, since that generator is
in the checkpoint, a resume).
"""
import random

import numpy as np
import torch
from mmengine.registry import FUNCTIONS

__all__ = ['torch_seeded_worker_init']


@FUNCTIONS.register_module()
def torch_seeded_worker_init(worker_id: int) -> None:
    """Seed numpy and ``random`` in a worker from its torch seed.

    Args:
        worker_id (int): Worker index (torch has already folded it into
            ``torch.initial_seed()``).
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
