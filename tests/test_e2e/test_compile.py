"""``tools/train.py --compile`` on the demo config: it trains end to end,
compiles in the first epoch only (the third compiles nothing new), writes
checkpoints with the eager model's keys that an eager run resumes, and a
resumed compiled run equals the uninterrupted one tensor for tensor.

The first run compiles the demo model (a minute or more on 2 cores); the
others find its kernels in inductor's on-disk cache."""
import re
from typing import Dict

import pytest
import torch
from e2e_helpers import (load_ckpt, make_demo_images, run_cmd,
                         subprocess_env, train_cmd, training_state,
                         write_config)
from mmengine.config import Config
from mmpretrain.registry import MODELS

import selfpatch_mm.models  # noqa: F401

pytestmark = pytest.mark.slow

ITERS_PER_EPOCH, EPOCHS = 3, 3
TIMEOUT = 1500  # a cold compile on a loaded 2-core machine


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> Dict:
    """The config and the uninterrupted compiled run (its log too)."""
    root = tmp_path_factory.mktemp('compile')
    data = root / 'images'
    make_demo_images(str(data), num=ITERS_PER_EPOCH * 8, size=64)
    cfg = write_config(
        root / 'demo.py', {
            'train_dataloader.dataset.data_root': str(data),
            'train_dataloader.num_workers': 0,
            'train_cfg.max_epochs': EPOCHS,
            'default_hooks.checkpoint.max_keep_ckpts': -1,
        })
    env = subprocess_env(threads=1)
    straight = root / 'straight'
    log = run_cmd(train_cmd(cfg, straight, '--compile'), cwd=root, env=env,
                  timeout=TIMEOUT).stdout
    return dict(root=root, cfg=cfg, env=env, straight=straight, log=log)


def _graphs_per_epoch(log: str) -> list:
    return [int(n) for n in re.findall(
        r'CompileHook: epoch \d+ compiled (\d+) new graphs', log)]


def test_compiled_run_compiles_in_the_first_epoch_only(setup):
    log = setup['log']
    assert 'CompileHook: torch.compile() of backbone, teacher.backbone, ' \
        'neck, teacher.neck, head, teacher.head, patch_head, ' \
        'teacher.patch_head' in log
    # the first iteration's time is logged with the graphs it made: 4
    # parts x 2 nets x 2 crop sizes, one head call per net and head
    assert re.search(r'the first iteration took [\d.]+ s, compiling 12 '
                     r'graphs \(0 graph breaks', log), log[-3000:]
    assert _graphs_per_epoch(log) == [12, 0, 0]


def test_checkpoint_of_a_compiled_run_is_an_eager_one(setup):
    ckpt = load_ckpt(setup['straight'] / f'epoch_{EPOCHS}.pth')
    model = MODELS.build(Config.fromfile(str(setup['cfg'])).model)
    assert list(ckpt['state_dict']) == list(model.state_dict())
    model.load_state_dict(ckpt['state_dict'], strict=True)
    # and an eager run resumes it
    work = setup['root'] / 'eager_resumed'
    out = run_cmd(train_cmd(setup['cfg'], work, '--resume',
                            str(setup['straight'] / 'epoch_2.pth')),
                  cwd=setup['root'], env=setup['env'],
                  timeout=TIMEOUT).stdout
    assert 'CompileHook' not in out
    assert load_ckpt(work / f'epoch_{EPOCHS}.pth')['meta']['epoch'] == EPOCHS


def test_resumed_compiled_run_equals_uninterrupted(setup):
    work = setup['root'] / 'resumed'
    log = run_cmd(train_cmd(setup['cfg'], work, '--compile', '--resume',
                            str(setup['straight'] / 'epoch_1.pth')),
                  cwd=setup['root'], env=setup['env'],
                  timeout=TIMEOUT).stdout
    # a new process compiles again, in its first epoch only
    assert _graphs_per_epoch(log) == [12, 0]
    want = training_state(load_ckpt(setup['straight'] /
                                    f'epoch_{EPOCHS}.pth'))
    got = training_state(load_ckpt(work / f'epoch_{EPOCHS}.pth'))
    assert want.keys() == got.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == []


@pytest.mark.skipif(
    torch.cuda.is_available(),
    reason='checks the CPU (gloo) path; tools/train.py uses NCCL on GPUs')
def test_compiled_ddp_with_accumulation(tmp_path, hook_dir):
    """2 gloo processes with --compile and gradient accumulation over 2
    iterations: DDP's hooks fire through the compiled parts, so both ranks
    end with the same student, teacher and centres. The batch per rank is
    the demo's 8, whose kernels the module's first run compiled."""
    from e2e_helpers import dist_train_cmd
    data = tmp_path / 'images'
    make_demo_images(str(data), num=32, size=64)  # 2 iterations per rank
    dump = tmp_path / 'dump'
    dump.mkdir()
    cfg = write_config(
        tmp_path / 'demo_dist.py', {
            'train_dataloader.dataset.data_root': str(data),
            'train_dataloader.num_workers': 0,
            'train_cfg.max_epochs': 1,
            'optim_wrapper.accumulative_counts': 2,
        },
        dump_dir=dump)
    cmd = dist_train_cmd(cfg, tmp_path / 'work', '--compile')
    log = run_cmd(cmd, cwd=tmp_path, env=subprocess_env(hook_dir, threads=1),
                  timeout=TIMEOUT).stdout
    assert 'CompileHook: epoch 1 compiled' in log
    ranks = [torch.load(dump / f'after_train_rank{r}.pth', weights_only=True)
             for r in (0, 1)]
    assert all(s['world_size'] == 2 and s['wrapped'] and s['iter'] == 2
               for s in ranks)
    for key in ('center', 'patch_center'):
        assert ranks[0][key].abs().sum() > 0, key
        torch.testing.assert_close(ranks[0][key], ranks[1][key], msg=key)
    for key in ranks[0]['teacher']:
        torch.testing.assert_close(ranks[0]['teacher'][key],
                                   ranks[1]['teacher'][key], msg=key)
