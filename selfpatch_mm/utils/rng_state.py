"""The random number generators training draws from, as checkpoint data.

Training draws from:

* torch's CPU generator: drop-path (stochastic depth) on the CPU, the
  DataLoader's base seed for its workers (drawn every epoch), anything
  in a ``num_workers=0`` pipeline that uses torch;
* torch's CUDA generators: drop-path and dropout on GPUs;
* numpy's and python's global generators: the data pipeline when it runs in
  the main process (``num_workers=0``).

mmengine restores the sampler by itself: ``DefaultSampler`` shuffles with a
generator seeded by ``seed + epoch``, the seed comes back from the
checkpoint's ``meta`` and ``DistSamplerSeedHook`` sets the epoch. Worker
processes are seeded by mmengine's ``worker_init_fn`` from ``seed``, the rank
and the worker id. The state is stored as tensors, ints and strings only, so
a ``weights_only`` loader reads it.
"""
import random
from typing import Any, Dict

import numpy as np
import torch

__all__ = ['get_rng_state', 'set_rng_state']


def get_rng_state() -> Dict[str, Any]:
    """This process's generator states.

    Returns:
        dict: ``torch`` (ByteTensor), ``cuda`` (the current device's
        ByteTensor in a list, empty when CUDA is not initialised),
        ``numpy`` and ``random``.
    """
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    cuda = []
    # Reading CUDA states would initialise CUDA in CPU-only runs; a run that
    # never touched CUDA has not drawn from it either. Only the current
    # device: a process trains on one, and touching the others would create
    # a context on every GPU of the node.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [torch.cuda.get_rng_state().clone()]
    return dict(
        torch=torch.get_rng_state().clone(),
        cuda=cuda,
        numpy=dict(
            name=str(name),
            keys=torch.from_numpy(keys.astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            gauss=float(gauss)),
        random=dict(
            version=int(version),
            internal=torch.tensor(internal, dtype=torch.int64),
            gauss_next=gauss_next))


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned.

    Args:
        state (dict): The saved states. A saved CUDA state goes to the
            current device; without CUDA it is skipped.
    """
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda') or []
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda[0].cpu())
    npy = state['numpy']
    np.random.set_state(
        (npy['name'], npy['keys'].numpy().astype(np.uint32), npy['pos'],
         npy['has_gauss'], npy['gauss']))
    rnd = state['random']
    random.setstate((rnd['version'], tuple(int(v) for v in rnd['internal']),
                     rnd['gauss_next']))
