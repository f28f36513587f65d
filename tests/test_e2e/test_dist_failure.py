"""A frozen (SIGSTOP) or dead (SIGKILL) rank of a 2-process CPU run (gloo)
stops the other rank within the collective timeout, with a message naming
the rank. The two ranks are plain ``tools/train.py --launcher pytorch``
processes, so the test controls each one."""
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from helpers import start_tool
# conftest.py puts this folder on sys.path
from e2e_helpers import free_port, subprocess_env, write_demo_run

TIMEOUT = 10  # seconds, via SELFPATCH_DIST_TIMEOUT


def _start_ranks(tmp_path: Path):
    cfg = write_demo_run(
        tmp_path, 'demo_dist.py', {
            'train_dataloader.batch_size': 2,
            'train_cfg.max_epochs': 500,  # runs until a rank is stopped
            'default_hooks.checkpoint.interval': 1000,
            'default_hooks.checkpoint.save_last': False,
        })
    port = free_port()
    procs, logs = [], []
    for rank in (0, 1):
        env = subprocess_env(threads=1)
        env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                   MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                   SELFPATCH_DIST_TIMEOUT=str(TIMEOUT))
        log = tmp_path / f'rank{rank}.log'
        with open(log, 'w') as out:
            procs.append(
                start_tool('tools/train.py', cfg, '--work-dir',
                           tmp_path / 'work', '--launcher', 'pytorch',
                           cwd=tmp_path, env=env, stdout=out))
        logs.append(log)
    # wait until training is under way (rank 0 logs every iteration)
    deadline = time.time() + 180
    while logs[0].read_text().count('Epoch(train)') < 3:
        assert time.time() < deadline, logs[0].read_text()[-3000:]
        assert all(p.poll() is None for p in procs), \
            logs[0].read_text()[-3000:]
        time.sleep(0.2)
    return procs, logs


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='checks gloo on CPU')
@pytest.mark.parametrize('sig, victim', [(signal.SIGSTOP, 1),
                                         (signal.SIGKILL, 0)])
def test_stopped_rank_stops_the_other(tmp_path: Path, sig, victim) -> None:
    procs, logs = _start_ranks(tmp_path)
    survivor = 1 - victim
    try:
        os.kill(procs[victim].pid, sig)
        start = time.time()
        rc = procs[survivor].wait(timeout=TIMEOUT + 60)
        took = time.time() - start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()  # SIGKILL also ends a stopped process
            proc.wait(timeout=30)
    text = logs[survivor].read_text()
    assert rc == 1, text[-3000:]
    assert f'[rank {survivor}/2] Stopping: rank {victim} stopped responding ' \
        '(frozen or dead)' in text, text[-3000:]
    assert f'{TIMEOUT} s timeout' in text and 'SELFPATCH_DIST_TIMEOUT' in text
    # a freeze is noticed after the timeout, a death at once; both well
    # before the timeout plus a margin for the run's own iteration
    assert took < TIMEOUT + 30, took
    if sig == signal.SIGKILL:
        assert took < TIMEOUT, took
