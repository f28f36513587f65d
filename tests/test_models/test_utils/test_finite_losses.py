"""check_finite_losses: a NaN/inf term stops every rank, named."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.logging import MessageHub

from selfpatch_mm.models.utils import NonFiniteLossError, check_finite_losses


def _log_vars(cls, patch):
    cls, patch = torch.tensor(cls), torch.tensor(patch)
    return dict(loss=cls + patch, loss_cls=cls, loss_patch=patch)


def test_finite_losses_pass():
    check_finite_losses(_log_vars(6.2, 0.4))


def test_names_iteration_epoch_and_term():
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', 41)
    hub.update_info('epoch', 2)
    with pytest.raises(NonFiniteLossError) as err:
        check_finite_losses(_log_vars(6.2, float('inf')))
    msg = str(err.value)
    assert 'iteration 42 (epoch 3)' in msg
    assert 'loss_patch (ranks [0], here inf)' in msg
    assert 'loss_cls' not in msg and '--resume' in msg


def _rank(rank, port, queue):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        # Only rank 1 diverges; rank 0 must stop as well, not wait.
        check_finite_losses(_log_vars(6.2, float('nan') if rank else 0.4))
        queue.put((rank, 'no error'))
    except NonFiniteLossError as e:
        queue.put((rank, str(e)))
    finally:
        dist.destroy_process_group()


def test_every_rank_raises_when_one_diverges():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    # fork: the test module is not importable by name in a spawned child
    ctx = mp.get_context('fork')
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, port, queue))
             for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    for rank in (0, 1):
        assert 'loss_patch (ranks [1]' in results[rank], results
    assert 'here nan' in results[1] and 'here 0.4' in results[0]
