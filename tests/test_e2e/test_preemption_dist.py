"""Preemption of distributed CPU runs (gloo): a signal that reaches one
rank, or one node, stops every rank at the same iteration with one
checkpoint.

* 2 processes under torchrun, only rank 1 signalled: both exit with 75 and
  ``--resume`` finishes with the weights of an uninterrupted 2-process run.
* 2 "nodes" of one process each on the loopback address, each started by
  ``tools/dist_train.sh`` (NNODES=2, NODE_RANK, MASTER_ADDR): they train
  with equal teachers, and a SIGTERM to one node's launcher stops both.
"""
import os
import re
import signal
import time
from pathlib import Path
from typing import Dict, List

import pytest
import torch
# conftest.py puts this folder on sys.path
from e2e_helpers import (PREEMPTION_TEST_HOOKS, dist_train_cmd, free_port,
                         load_ckpt, make_demo_images, run_cmd,
                         subprocess_env, training_state, with_test_hooks,
                         write_config)
from helpers import start_tool

from selfpatch_mm.engine.hooks import PREEMPTED_EXIT_CODE

pytestmark = [
    pytest.mark.slow, pytest.mark.dist,
    pytest.mark.skipif(
        torch.cuda.is_available(),
        reason='checks the CPU (gloo) path; tools/train.py uses NCCL on GPUs')
]

ITERS_PER_EPOCH = 6  # 24 images, 2 per rank and iteration


@pytest.fixture
def setup(tmp_path: Path) -> Dict:
    data = tmp_path / 'images'
    make_demo_images(str(data), num=24, size=64)
    hooks = tmp_path / 'hooks'
    hooks.mkdir()
    (hooks / 'preemption_test_hooks.py').write_text(PREEMPTION_TEST_HOOKS)
    base = write_config(
        tmp_path / 'base.py', {
            'train_dataloader.dataset.data_root': str(data),
            'train_dataloader.batch_size': 2,
            'train_dataloader.num_workers': 0,
            'model.backbone.drop_path_rate': 0.1,
            'train_cfg.max_epochs': 2,
            'default_hooks.logger.interval': 1,
        })
    return dict(root=tmp_path, base=base, env=subprocess_env(hooks, 1))


def _config(setup: Dict, name: str, hooks: List[dict]) -> Path:
    return with_test_hooks(setup['base'], setup['root'] / name,
                           'preemption_test_hooks', hooks)


def test_signal_to_rank_1_stops_both_then_resume_is_exact(setup) -> None:
    root, env = setup['root'], setup['env']
    straight = root / 'straight'
    run_cmd(dist_train_cmd(setup['base'], straight), cwd=root, env=env,
            timeout=300)

    cfg = _config(setup, 'signal_rank1.py',
                  [dict(type='SignalAtHook', at_iter=8, rank=1)])
    work = root / 'signalled'
    proc = run_cmd(dist_train_cmd(cfg, work), cwd=root, env=env,
                   expect_ok=False, timeout=300)
    # rank 0 (which logs) stopped on rank 1's signal after iteration 9
    assert 'Stopping on a signal on another rank: saved the state after ' \
        'iteration 9' in proc.stdout, proc.stdout[-3000:]
    code = rf'exitcode\s*:\s*{PREEMPTED_EXIT_CODE}\b'
    assert re.search(code, proc.stdout), proc.stdout[-3000:]
    latest = load_ckpt(work / 'latest.pth')
    assert latest['meta']['iter'] == 9
    assert latest['meta']['train_position']['world_size'] == 2
    assert len(latest['rng_state']) == 2  # every rank's generators
    assert sorted(p.name for p in work.glob('*.pth')) == \
        ['epoch_1.pth', 'latest.pth']

    run_cmd(dist_train_cmd(setup['base'], work, '--resume'), cwd=root, env=env,
            timeout=300)
    want = training_state(load_ckpt(straight / 'epoch_2.pth'))
    got = training_state(load_ckpt(work / 'epoch_2.pth'))
    assert want.keys() == got.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == []


def _teacher_sums(folder: Path, rank: int) -> Dict[int, float]:
    lines = (folder / f'teacher_rank{rank}.txt').read_text().split('\n')
    return {int(a): float(b) for a, b in (x.split() for x in lines if x)}


def test_two_nodes_on_loopback_through_dist_train_sh(setup) -> None:
    root = setup['root']
    sums = root / 'sums'
    sums.mkdir()
    cfg = _config(setup, 'two_nodes.py', [
        dict(type='TeacherSumHook', out_dir=str(sums))])
    work = root / 'nodes'
    port = str(free_port())
    nodes, logs = [], []
    for node in (0, 1):
        env = dict(setup['env'], NNODES='2', NODE_RANK=str(node),
                   MASTER_ADDR='127.0.0.1', PORT=port)
        logs.append(root / f'node{node}.log')
        nodes.append(start_tool(
            'tools/dist_train.sh', cfg, '1', '--work-dir', work,
            '--cfg-options', 'train_cfg.max_epochs=20', cwd=root, env=env,
            stdout=open(logs[-1], 'w'), start_new_session=True))
    deadline = time.time() + 240
    while not (sums / 'teacher_rank1.txt').exists() or \
            len(_teacher_sums(sums, 1)) < 8:
        assert time.time() < deadline and all(
            n.poll() is None for n in nodes), logs[1].read_text()[-3000:]
        time.sleep(0.1)
    # node 1 is preempted: SIGTERM to all of its processes (torchrun, which
    # passes it on, and its worker), as a cluster does
    os.killpg(nodes[1].pid, signal.SIGTERM)
    for n in nodes:
        n.wait(timeout=120)
    assert all(n.returncode != 0 for n in nodes)
    text = logs[0].read_text() + logs[1].read_text()
    done = re.findall(r'saved the state after iteration (\d+) to', text)
    assert len(done) == 1, text[-3000:]
    latest = load_ckpt(work / 'latest.pth')
    stop = int(done[0])
    assert latest['meta']['iter'] == stop < 20 * ITERS_PER_EPOCH
    assert latest['meta']['train_position']['world_size'] == 2
    # the ranks agreed on the teacher at every iteration, up to the stop
    rank0, rank1 = _teacher_sums(sums, 0), _teacher_sums(sums, 1)
    assert max(rank0) == max(rank1) == stop
    assert rank0 == rank1
    teacher = sum(float(v.double().sum())
                  for k, v in latest['state_dict'].items()
                  if k.startswith('teacher.') and 'center' not in k
                  and v.is_floating_point())
    assert teacher == pytest.approx(rank0[stop], rel=1e-9)
