"""The ViT-S/8 pretraining config: bf16 where the GPU has it, fp32 on older
GPUs and the CPU, never fp16 by default (official --use_fp16 help text of
main_dino.py / main_selfpatch.py: disable mixed precision "if reducing the
patch size"); teacher momentum 0.9995 for its total batch of 256 (official
--momentum_teacher help text)."""
import re
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

from selfpatch_mm.engine import (SelfPatchAmpOptimWrapper,
                                 SelfPatchOptimWrapper)
from selfpatch_mm.engine.optimizers import \
    auto_amp_selfpatch_optim_wrapper as auto_amp

REPO = Path(__file__).resolve().parents[2]
CONFIG = (REPO / 'configs' / 'selfpatch' /
          'selfpatch_vit-small-p8_8xb32-coslr-200e_in1k.py')
# total batch -> the official advice (main_dino.py / main_selfpatch.py
# --momentum_teacher: 0.996 by default, for the paper's 1024; "for example
# use 0.9995 with batch size of 256")
OFFICIAL_MOMENTUM = {1024: 0.996, 256: 0.9995}


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(str(CONFIG))


def _build(cfg, monkeypatch, cuda: bool, capability=(8, 0)):
    # the device checks of the factory only: the wrappers themselves are
    # built on the CPU parameters
    monkeypatch.setattr(auto_amp, '_cuda_available', lambda: cuda)
    monkeypatch.setattr(torch.cuda, 'get_device_capability',
                        lambda *a: capability)
    kwargs = {k: v for k, v in cfg.optim_wrapper.items()
              if k not in ('constructor', 'paramwise_cfg', 'optimizer')}
    param = nn.Parameter(torch.zeros(3))
    return OPTIM_WRAPPERS.build(
        dict(kwargs, optimizer=torch.optim.AdamW([param], lr=1e-3)))


def test_bf16_on_gpus_with_bf16(cfg, monkeypatch):
    wrapper = _build(cfg, monkeypatch, cuda=True, capability=(8, 0))
    assert type(wrapper) is SelfPatchAmpOptimWrapper
    assert wrapper.cast_dtype is torch.bfloat16
    assert wrapper.loss_scaler is None  # no fp16 GradScaler
    wrapper = _build(cfg, monkeypatch, cuda=True, capability=(9, 0))
    assert wrapper.cast_dtype is torch.bfloat16


@pytest.mark.parametrize('cuda, capability', [(True, (7, 0)),
                                              (True, (7, 5)),
                                              (False, (0, 0))],
                         ids=['V100', 'T4', 'CPU'])
def test_fp32_without_bf16(cfg, monkeypatch, cuda, capability):
    wrapper = _build(cfg, monkeypatch, cuda=cuda, capability=capability)
    assert type(wrapper) is SelfPatchOptimWrapper


def test_paper_config_keeps_the_official_fp16(monkeypatch):
    """The ViT-S/16 configs stay fp16 with a GradScaler on any GPU."""
    paper = Config.fromfile(str(CONFIG.parent /
                                'selfpatch_vit-small-p16_8xb128-coslr-200e_'
                                'in1k.py'))
    for capability in ((7, 0), (8, 0)):
        wrapper = _build(paper, monkeypatch, cuda=True,
                         capability=capability)
        assert wrapper.cast_dtype is torch.float16
        assert wrapper.loss_scaler is not None


def test_amp_flag_keeps_the_configs_bf16(cfg):
    """``tools/train.py --amp`` keeps the config's bf16 (no fp32 fallback);
    only ``--amp-dtype fp16`` asks for fp16."""
    sys.path.insert(0, str(REPO / 'tools'))
    try:
        from train import enable_amp
    finally:
        sys.path.pop(0)
    amp = Config(cfg.to_dict())
    enable_amp(amp, None)
    assert amp.optim_wrapper.type == 'SelfPatchAmpOptimWrapper'
    assert amp.optim_wrapper.dtype == 'bfloat16'
    assert 'bf16_fallback' not in amp.optim_wrapper
    assert 'loss_scale' not in amp.optim_wrapper
    forced = Config(cfg.to_dict())
    enable_amp(forced, 'fp16')
    assert forced.optim_wrapper.dtype == 'float16'


def test_teacher_momentum_follows_the_official_advice_for_its_batch(cfg):
    gpus = int(re.search(r'_(\d+)xb(\d+)', CONFIG.name).group(1))
    total = gpus * cfg.train_dataloader.batch_size
    assert total in OFFICIAL_MOMENTUM, (
        f'no official teacher momentum for a total batch of {total}; '
        'see docs/training_on_gpus.md')
    ema = [h for h in cfg.custom_hooks if h.type == 'TeacherEMAHook']
    assert len(ema) == 1
    assert ema[0].momentum == OFFICIAL_MOMENTUM[total]
    assert ema[0].end_momentum == 1.0
    # the other hooks of the recipe are all still there
    base = Config.fromfile(str(CONFIG.parent /
                               'selfpatch_vit-small-p16_8xb128-coslr-200e_'
                               'in1k.py'))
    assert [h.type for h in cfg.custom_hooks] == \
        [h.type for h in base.custom_hooks]
