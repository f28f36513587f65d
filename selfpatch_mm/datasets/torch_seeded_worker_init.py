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

Workers also outlive a cluster's stop signal. Slurm signals every process
of a job step, and a worker that SIGTERM or SIGUSR1 killed would make the
main process fail at its next batch, before ``PreemptionHook`` has saved.
So workers ignore SIGUSR1, and take SIGTERM only from their parent (as
torch's own worker handler does: the parent terminates its workers that
way when it exits); the main process decides when the run stops.
"""
import os
import random
import signal
import threading

import numpy as np
import torch
from mmengine.registry import FUNCTIONS

__all__ = ['torch_seeded_worker_init']


def _outlive_stop_signals() -> None:
    """Ignore SIGUSR1; exit on SIGTERM only when the parent sent it."""
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    if not hasattr(signal, 'sigwaitinfo'):  # not Linux: torch's handler
        return
    parent = os.getppid()
    # Blocked here, and so in every thread this worker starts later; the
    # waiting thread receives it with its sender, which a Python handler
    # cannot see.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def wait() -> None:
        while True:
            if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
                os._exit(0)

    threading.Thread(target=wait, name='sigterm-from-parent',
                     daemon=True).start()


@FUNCTIONS.register_module()
def torch_seeded_worker_init(worker_id: int) -> None:
    """Seed numpy and ``random`` in a worker from its torch seed.

    Args:
        worker_id (int): Worker index (torch has already folded it into
            ``torch.initial_seed()``).
    """
    _outlive_stop_signals()
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
