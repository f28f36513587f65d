"""End to end: the standard DINO config (DINOSelfSupervisor) trains through
tools/train.py at a tiny size, with the official DINO defaults kept."""
import re
from pathlib import Path

import pytest
from e2e_helpers import (REPO_ROOT, load_ckpt, make_demo_images, run_cmd,
                         train_cmd, write_config)
from mmengine.config import Config

DINO_CFG = (REPO_ROOT / 'configs' / 'selfpatch' /
            'dino_vit-small-p16_8xb64-coslr-100e_in1k.py')

# A 64-d, 2-layer ViT with 8-pixel patches and small heads; crops of 32 and
# 16 pixels. Everything else (the recipe) is the config's.
TINY = {
    'model.backbone.arch':
    dict(_delete_=True, embed_dims=64, num_layers=2, num_heads=2,
         feedforward_channels=128),
    'model.backbone.img_size': 32,
    'model.backbone.patch_size': 8,
    'model.head.in_channels': 64,
    'model.head.out_channels': 256,
    'model.head.hidden_channels': 128,
    'model.head.bottleneck_channels': 32,
    'model.head.loss.out_channels': 256,
    'train_dataloader.dataset.pipeline.1.global_crop_size': 32,
    'train_dataloader.dataset.pipeline.1.local_crop_size': 16,
    'train_dataloader.dataset.pipeline.1.num_local_crops': 2,
    'train_dataloader.batch_size': 4,
    'train_dataloader.num_workers': 0,
    'train_dataloader.persistent_workers': False,
    'train_dataloader.pin_memory': False,
    'train_dataloader.prefetch_factor': None,
    'train_cfg.max_epochs': 1,
    'default_hooks.logger.interval': 1,
}


def test_dino_defaults_are_the_official_ones():
    cfg = Config.fromfile(str(DINO_CFG))
    model = cfg.model
    assert model.type == 'DINOSelfSupervisor' and 'neck' not in model
    assert model.backbone.with_cls_token and model.backbone.final_norm
    assert model.head.out_channels == 65536 and model.head.norm_last_layer
    assert (model.head.loss.teacher_temp, model.head.loss.student_temp) == \
        (0.04, 0.1)
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert tuple(crop.global_crops_scale) == (0.4, 1.0)
    assert tuple(crop.local_crops_scale) == (0.05, 0.4)
    assert crop.num_local_crops == 8 and crop.local_crop_size == 96
    assert cfg.train_dataloader.batch_size == 64
    assert cfg.train_cfg.max_epochs == 100
    assert cfg.optim_wrapper.optimizer.lr == 0.0005
    hooks = {h.type: h for h in cfg.custom_hooks}
    assert hooks['TeacherEMAHook'].momentum == 0.996
    assert hooks['TeacherTempWarmupHook'].teacher_temp == 0.04
    assert hooks['FreezeLastLayerHook'].num_epochs == 1
    warmup, cosine, wd = cfg.param_scheduler
    assert (warmup.end, cosine.T_max, cosine.end, wd.T_max) == (10, 90, 100,
                                                                100)


@pytest.mark.slow
def test_dino_trains_through_tools_train(tmp_path: Path):
    data = tmp_path / 'images'
    make_demo_images(str(data), num=8, size=48)
    cfg = write_config(tmp_path / 'dino_tiny.py', {
        **TINY, 'train_dataloader.dataset.data_root': str(data)
    },
                       base=DINO_CFG)
    work = tmp_path / 'work'
    out = run_cmd(train_cmd(cfg, work), cwd=tmp_path).stdout
    lines = [line for line in out.splitlines() if 'Epoch(train)' in line]
    assert len(lines) == 2, out[-3000:]
    assert all(re.search(r'loss_cls: \d', line) for line in lines)
    assert not any('loss_patch' in line for line in lines)
    state = load_ckpt(work / 'epoch_1.pth')['state_dict']
    assert {k.split('.')[0] for k in state} == {'backbone', 'head', 'teacher'}
    assert {k.split('.')[1] for k in state if k.startswith('teacher.')} == {
        'backbone', 'head'}
    assert state['backbone.cls_token'].shape == (1, 1, 64)
    assert state['head.loss_module.center'].abs().sum() > 0
    assert 'teacher.head.loss_module.center' not in state
