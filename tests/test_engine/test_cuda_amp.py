"""Real CUDA mixed precision: ``torch.autocast('cuda')`` steps through
SelfPatchAmpOptimWrapper, fp16 with the GradScaler and bf16 without.

Run with ``pytest -m cuda`` (``tools/misc/gpu_check.sh`` does); skipped
without a GPU.
"""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA'),
]

DEMO_CFG = Path(__file__).resolve().parents[2] / 'configs' / 'selfpatch' / \
    'selfpatch_vit-tiny-p8_1xb8-2e_demo.py'


@pytest.fixture(scope='module')
def model_and_views():
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    # The losses only: the logged health figures are no part of training.
    model = MODELS.build(
        dict(Config.fromfile(str(DEMO_CFG)).model, log_health=False))
    model.init_weights()
    model.cuda().train()
    g = torch.Generator(device='cuda').manual_seed(0)
    # The batch whose fp16 patch-loss sum overflowed (64 x 256 patches).
    views = [torch.randn(64, 3, 128, 128, device='cuda', generator=g)
             for _ in range(2)]
    views += [torch.randn(64, 3, 32, 32, device='cuda', generator=g)
              for _ in range(4)]
    with torch.no_grad():
        ref = copy.deepcopy(model).loss(views, None)
    return model, views, ref


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_cuda_amp_steps(model_and_views, dtype):
    model, views, ref = model_and_views
    model = copy.deepcopy(model)
    wrapper = build_optim_wrapper(
        model,
        dict(type='SelfPatchAmpOptimWrapper', dtype=dtype,
             optimizer=dict(type='AdamW', lr=1e-4),
             clip_grad=dict(type='per_param', max_norm=3.0)))
    assert wrapper.device_type == 'cuda'
    assert (wrapper.loss_scaler is not None) == (dtype == 'float16')
    for step in range(3):
        with wrapper.optim_context(model):
            losses = model.loss(views, None)
        for name, value in losses.items():
            assert value.dtype == torch.float32, name
            assert torch.isfinite(value), (step, name, value)
            if step == 0:
                rel = abs(value.item() - ref[name].item()) / abs(
                    ref[name].item())
                assert rel < 0.02, (name, value.item(), ref[name].item())
        wrapper.update_params(sum(losses.values()))
        model.update_teacher(0.996)
    for p in model.parameters():
        assert p.dtype == torch.float32 and torch.isfinite(p).all()
