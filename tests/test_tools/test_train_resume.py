"""End-to-end checks of tools/train.py and tools/test.py.

A tiny mmpretrain classifier is trained on a generated two-class image
folder, through the tools as a user runs them (subprocesses with
``sys.executable``).
"""
import re
import shutil
import socket
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch
from helpers import run_command, run_tool, tool_env

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN = REPO_ROOT / 'tools' / 'train.py'
TEST = REPO_ROOT / 'tools' / 'test.py'

NUM_IMAGES_PER_CLASS = 8  # 16 images, batch 4 -> 4 iterations per epoch
ITERS_PER_EPOCH = 2 * NUM_IMAGES_PER_CLASS // 4

CONFIG_TEMPLATE = """
default_scope = 'mmpretrain'
data_root = {data_root!r}
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet', depth=18, stem_channels=8, base_channels=8,
        num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(1, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead', num_classes=2, in_channels=16,
        loss=dict(type='CrossEntropyLoss')))
data_preprocessor = dict(
    num_classes=2, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True)
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='',
                 pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
test_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='',
                 pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = dict(type='Accuracy', topk=(1, ))
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
train_cfg = dict(by_epoch=True, max_epochs=1)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'))
log_level = 'INFO'
randomness = dict(seed=0)
"""


def _make_image_folder(root: Path) -> None:
    """Write an ImageNet-style folder: two classes of 32x32 PNG images."""
    import cv2
    rng = np.random.default_rng(0)
    for cls_idx, cls_name in enumerate(('dark', 'bright')):
        cls_dir = root / cls_name
        cls_dir.mkdir(parents=True)
        for i in range(NUM_IMAGES_PER_CLASS):
            base = 60 + 120 * cls_idx
            img = np.clip(base + rng.normal(0, 20, (32, 32, 3)), 0,
                          255).astype(np.uint8)
            cv2.imwrite(str(cls_dir / f'{i:03d}.png'), img)


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """A tiny classification config (with its data) in ``tmp_path``."""
    data_root = tmp_path / 'data'
    _make_image_folder(data_root)
    cfg_path = tmp_path / 'tiny_cls.py'
    cfg_path.write_text(CONFIG_TEMPLATE.format(data_root=str(data_root)))
    return cfg_path


def _run(cmd: List[str], cwd: Path, timeout: int = 120) -> str:
    """Run a command, fail the test with its output when it fails."""
    return run_command(cmd, cwd, timeout=timeout).stdout


def _load(path: Path) -> dict:
    """Load a checkpoint this test wrote, as data (the project's loader)."""
    from selfpatch_mm.checkpoint import load_checkpoint_file
    return load_checkpoint_file(str(path))


@pytest.mark.slow
def test_train_resume_path_and_test_dump(tiny_config: Path,
                                         tmp_path: Path) -> None:
    """The tools on a plain mmpretrain config (not SelfPatch): ``--resume
    PATH`` into a fresh work dir and ``test.py --out``. That a resumed
    SelfPatch run equals the uninterrupted one tensor for tensor (and the
    auto ``--resume``) is tests/test_e2e/test_crash_resume.py's job."""
    work_dir = tmp_path / 'work'
    _run([sys.executable, str(TRAIN), str(tiny_config),
          '--work-dir', str(work_dir)], cwd=tmp_path)
    ckpt1 = work_dir / 'epoch_1.pth'
    meta1 = _load(ckpt1)['meta']
    assert meta1['iter'] == ITERS_PER_EPOCH and meta1['epoch'] == 1

    # --resume with an explicit checkpoint path, into a fresh work dir.
    work_dir2 = tmp_path / 'work2'
    out = _run([sys.executable, str(TRAIN), str(tiny_config),
                '--work-dir', str(work_dir2), '--resume', str(ckpt1),
                '--cfg-options', 'train_cfg.max_epochs=2'], cwd=tmp_path)
    assert re.search(
        rf'resumed epoch: 1, iter: {ITERS_PER_EPOCH}', out), out[-3000:]
    ckpt2 = work_dir2 / 'epoch_2.pth'
    assert _load(ckpt2)['meta']['iter'] == 2 * ITERS_PER_EPOCH
    assert not (work_dir2 / 'epoch_1.pth').exists()

    # tools/test.py: the printed accuracy is the one of the dumped
    # predictions against the folder's labels (class folders sorted by
    # name: bright = 0, dark = 1).
    out_pkl = tmp_path / 'preds.pkl'
    out = _run([sys.executable, str(TEST), str(tiny_config), str(ckpt2),
                '--work-dir', str(tmp_path / 'test_work'), '--out',
                str(out_pkl)], cwd=tmp_path)
    import pickle
    with open(out_pkl, 'rb') as f:
        preds = pickle.load(f)  # noqa: S301 (written by this test)
    assert len(preds) == 2 * NUM_IMAGES_PER_CLASS
    truth = [int('/dark/' in p['img_path']) for p in preds]
    assert [int(p['gt_label']) for p in preds] == truth
    correct = sum(int(p['pred_label']) == t for p, t in zip(preds, truth))
    printed = float(re.search(r'accuracy/top1: ([\d.]+)', out).group(1))
    assert printed == pytest.approx(100 * correct / len(preds), abs=1e-3)


@pytest.mark.slow
def test_default_work_dir_and_amp_without_cuda(tiny_config: Path,
                                               tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip('checks the CPU-only error of --amp')
    out = run_command([sys.executable, TRAIN, tiny_config, '--amp'],
                      tmp_path, expect_ok=False, timeout=120).stdout
    assert "AmpOptimWrapper needs a CUDA device" in out
    # nothing was built: the default work dir was not created
    assert not (tmp_path / 'work_dirs').exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.dist
@pytest.mark.skipif(
    shutil.which('bash') is None, reason='needs bash for dist_train.sh')
def test_dist_train_two_processes(tiny_config: Path, tmp_path: Path) -> None:
    """tools/dist_train.sh with 2 processes: gloo on the CPU, NCCL on GPUs.

    The two ranks train on different halves of the data, so equal final
    weights show that the gradients were averaged.
    """
    if torch.cuda.is_available() and torch.cuda.device_count() < 2:
        pytest.skip('needs 2 GPUs or none')
    work_dir = tmp_path / 'dist_work'
    (tmp_path / 'dump_hook.py').write_text(DUMP_HOOK)
    tiny_config.write_text(tiny_config.read_text() +
                           DUMP_HOOK_CFG.format(out_dir=str(work_dir)))
    # the hook module lives in tmp_path
    env = tool_env([tmp_path], PORT=str(_free_port()))
    run_tool('tools/dist_train.sh', tiny_config, '2', '--work-dir', work_dir,
             cwd=tmp_path, env=env, timeout=180)
    w0 = torch.load(work_dir / 'rank0_weights.pth', weights_only=True)
    w1 = torch.load(work_dir / 'rank1_weights.pth', weights_only=True)
    assert w0.keys() == w1.keys() and len(w0) > 0
    for k in w0:
        torch.testing.assert_close(w0[k], w1[k], msg=k)
    # 16 images over 2 ranks at batch 4: half the iterations per epoch
    meta = _load(work_dir / 'epoch_1.pth')['meta']
    assert meta['iter'] == ITERS_PER_EPOCH // 2


DUMP_HOOK = '''
import os.path as osp

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module(force=True)
class DumpRankWeightsHook(Hook):
    """Save each rank's parameters after training (for the DDP test)."""

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def after_train(self, runner):
        model = runner.model
        assert get_world_size() == 2, get_world_size()
        assert is_model_wrapper(model), type(model)
        model = model.module
        state = {k: v.detach().clone() for k, v in model.named_parameters()}
        torch.save(state, osp.join(self.out_dir,
                                   f'rank{get_rank()}_weights.pth'))
'''

DUMP_HOOK_CFG = '''
custom_imports = dict(imports=['dump_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='DumpRankWeightsHook', out_dir={out_dir!r})]
'''


def test_safe_mmengine_loader_reads_runner_style_file(
        tmp_path: Path) -> None:
    """numpy objects in a checkpoint (as in a Runner's meta) load through
    mmengine's loader, which selfpatch_mm routes to its safe loader."""
    from mmengine.runner.checkpoint import _load_checkpoint

    from selfpatch_mm.checkpoint import register_mmengine_loaders
    path = tmp_path / 'ckpt.pth'
    torch.save({'meta': {'seed': np.int64(3), 'hist': np.arange(3)},
                'state_dict': {'w': torch.ones(2)}}, path)
    register_mmengine_loaders()
    register_mmengine_loaders()  # idempotent
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert int(ckpt['meta']['seed']) == 3
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    with pytest.raises(FileNotFoundError):
        _load_checkpoint(str(tmp_path / 'missing.pth'))


def test_set_cpu_ddp_wrapper() -> None:
    from mmengine.config import Config

    from selfpatch_mm.apis import set_cpu_ddp_wrapper
    cfg = Config(dict(find_unused_parameters=True))
    set_cpu_ddp_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel', device_ids=None,
        broadcast_buffers=False, find_unused_parameters=True)
    # an existing DDP wrapper config keeps its keys
    cfg = Config(dict(model_wrapper_cfg=dict(
        type='MMDistributedDataParallel', find_unused_parameters=True)))
    set_cpu_ddp_wrapper(cfg)
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model_wrapper_cfg.find_unused_parameters is True
    # a non-DDP wrapper is left alone
    cfg = Config(dict(model_wrapper_cfg=dict(
        type='MMFullyShardedDataParallel')))
    set_cpu_ddp_wrapper(cfg)
    assert 'device_ids' not in cfg.model_wrapper_cfg
