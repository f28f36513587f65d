"""Crashes and resume of the real SelfPatch model through tools/train.py.

* A run stopped after epoch 1 and resumed equals an uninterrupted run
  tensor for tensor, with drop-path on and the pipeline in the main process
  (torch, numpy and python RNGs all matter); without the saved RNG states
  it does not.
* A run SIGKILLed at random moments, each time with its newest checkpoint
  cut to half its size, still resumes and finishes.
"""
import os
import random
import signal
import time
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from helpers import start_tool
# conftest.py puts this folder on sys.path
from e2e_helpers import (make_demo_images, run_cmd, subprocess_env,
                         train_cmd, training_state, write_config)
from mmengine.config import Config

from selfpatch_mm.checkpoint import load_checkpoint_file
from selfpatch_mm.checkpoint.checkpoint_files import is_tmp_checkpoint

# Ends the process, as a crash would, once epoch ``epoch``'s checkpoint is
# written (priority LOWEST: after the checkpoint hook).
EXIT_HOOK = '''
import os

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module(force=True)
class ExitAfterEpochHook(Hook):
    priority = 'LOWEST'

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:
            os._exit(0)
'''


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> Dict[str, Path]:
    """Images, the exit hook module and the configs of the resume test."""
    root = tmp_path_factory.mktemp('crash_resume')
    data = root / 'images'
    make_demo_images(str(data), num=16, size=72)
    hooks = root / 'hooks'
    hooks.mkdir()
    (hooks / 'selfpatch_exit_hook.py').write_text(EXIT_HOOK)
    options = {
        'train_dataloader.dataset.data_root': str(data),
        'train_dataloader.num_workers': 0,  # pipeline RNG in the main process
        'model.backbone.drop_path_rate': 0.1,
        'train_cfg.max_epochs': 2,
        'default_hooks.checkpoint.max_keep_ckpts': -1,
    }
    plain = write_config(root / 'demo_exact.py', options)
    cfg = Config.fromfile(str(plain))  # the same plus the exit hook
    cfg.custom_imports.imports = list(cfg.custom_imports.imports) + \
        ['selfpatch_exit_hook']
    cfg.custom_hooks = list(cfg.custom_hooks) + [
        dict(type='ExitAfterEpochHook', epoch=1)
    ]
    crash = root / 'demo_exact_crash.py'
    cfg.dump(str(crash))
    return dict(root=root, data=data, hooks=hooks, plain=plain, crash=crash)


def _differing(a: dict, b: dict) -> List[str]:
    ta, tb = training_state(a), training_state(b)
    assert ta.keys() == tb.keys()
    return [k for k in ta if not torch.equal(ta[k], tb[k])]


@pytest.mark.slow
def test_resume_is_bit_exact_with_drop_path(setup) -> None:
    root, env = setup['root'], subprocess_env(setup['hooks'])
    straight = root / 'straight'
    run_cmd(train_cmd(setup['plain'], straight), cwd=root, env=env)
    crashed = root / 'crashed'
    run_cmd(train_cmd(setup['crash'], crashed), cwd=root, env=env)
    assert (crashed / 'epoch_1.pth').is_file()
    assert not (crashed / 'epoch_2.pth').exists()
    out = run_cmd(train_cmd(setup['plain'], crashed, '--resume'), cwd=root,
                  env=env).stdout
    assert 'resumed epoch: 1, iter: 2' in out, out[-3000:]

    want = load_checkpoint_file(str(straight / 'epoch_2.pth'))
    got = load_checkpoint_file(str(crashed / 'epoch_2.pth'))
    assert want['meta']['iter'] == got['meta']['iter'] == 4
    assert _differing(want, got) == []
    # drop-path is really on in the saved config
    assert 'drop_path_rate=0.1' in got['meta']['cfg']

    # Control: the same resume without the saved RNG states differs.
    stripped = root / 'stripped'
    stripped.mkdir()
    ckpt = load_checkpoint_file(str(crashed / 'epoch_1.pth'))
    del ckpt['rng_state']
    torch.save(ckpt, stripped / 'epoch_1.pth')
    (stripped / 'last_checkpoint').write_text('epoch_1.pth')
    run_cmd(train_cmd(setup['plain'], stripped, '--resume'), cwd=root,
            env=env)
    assert _differing(want, load_checkpoint_file(
        str(stripped / 'epoch_2.pth')))


def _epochs(work: Path) -> List[int]:
    return sorted(
        int(p.stem.split('_')[1]) for p in work.glob('epoch_*.pth'))


@pytest.mark.slow
def test_random_sigkills_and_cut_checkpoints_still_finish(tmp_path: Path):
    """3 times: start (or resume), wait for a new checkpoint, SIGKILL at a
    random moment up to 1.2 s later, cut the newest checkpoint to half its
    size. A last resume must warn about the cut file and finish."""
    data = tmp_path / 'images'
    make_demo_images(str(data), num=8, size=72)
    max_epochs = 8
    cfg = write_config(
        tmp_path / 'demo_kill.py', {
            'train_dataloader.dataset.data_root': str(data),
            'train_dataloader.num_workers': 0,
            'train_cfg.max_epochs': max_epochs,  # 1 iteration per epoch
            'default_hooks.checkpoint.max_keep_ckpts': 2,
        })
    work = tmp_path / 'work'
    rng = random.Random(0)
    cut = []
    for round_ in range(3):
        log = tmp_path / f'run{round_}.log'
        before = set(_epochs(work)) if work.exists() else set()
        with open(log, 'w') as out:
            proc = start_tool('tools/train.py', cfg, '--work-dir', work,
                              '--resume', cwd=tmp_path,
                              env=subprocess_env(), stdout=out)
            deadline = time.time() + 120
            while proc.poll() is None and time.time() < deadline and \
                    not set(_epochs(work)) - before:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.2))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        text = log.read_text()
        if round_ > 0:
            assert f'Cannot resume from {cut[-1]}' in text, text[-3000:]
        assert 'Traceback' not in text, text[-3000:]
        newest = work / f'epoch_{_epochs(work)[-1]}.pth'
        os.truncate(newest, newest.stat().st_size // 2)
        cut.append(newest)

    out = run_cmd(
        train_cmd(cfg, work, '--resume'), cwd=tmp_path,
        timeout=300).stdout
    assert f'Cannot resume from {cut[-1]}' in out, out[-3000:]
    final = load_checkpoint_file(str(work / f'epoch_{max_epochs}.pth'))
    assert final['meta']['epoch'] == max_epochs
    assert final['meta']['iter'] == max_epochs
    assert (work / 'last_checkpoint').read_text() == f'epoch_{max_epochs}.pth'
    assert not any(is_tmp_checkpoint(n) for n in os.listdir(work))
