"""Mixed precision: losses, centres, softmaxes and matching stay fp32 under
autocast, so fp16/bf16 training gives the fp32 numbers (issue: fp16
overflowed ``loss_patch`` to inf at 32+ images per GPU).

CPU autocast stands in for CUDA AMP here; ``tests/test_engine/
test_cuda_amp.py`` runs the real CUDA path when a GPU is present.
"""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from selfpatch_mm.models.losses import (cross_view_cross_entropy,
                                        per_view_patch_cross_entropy)
from selfpatch_mm.models.utils import match_positives

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'selfpatch'
DEMO_CFG = CONFIGS / 'selfpatch_vit-tiny-p8_1xb8-2e_demo.py'
PAPER_CFG = CONFIGS / 'selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py'

DTYPES = [torch.float16, torch.bfloat16]


def _cpu_kind() -> str:
    """``'amx'`` on CPUs with AMX bf16 tiles (Intel Sapphire Rapids and
    newer), ``'avx'`` otherwise: their half-precision matmul kernels round
    differently, so the bounds below are per kind."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:
        return 'avx'
    return 'amx' if 'amx_bf16' in flags else 'avx'


# Largest relative error measured per CPU kind; the tests allow 2x that.
# amx: Intel Xeon with AMX, 2 cores, 2026-12-08 (this machine);
# avx: AMD EPYC, 2 cores, AVX2 only, 2026-12-01 (docs/training_on_gpus.md).
MEASURED = {
    'amx': {
        # the losses at the demo's large batch, max over loss_cls/patch
        'large_batch': {torch.float16: 2.8e-4, torch.bfloat16: 8.1e-4},
        # paper-shape gradients: (global relative L2, worst single tensor)
        'grads': {'float16': (0.0016, 0.0021), 'bfloat16': (0.0143, 0.0273)},
    },
    'avx': {
        'large_batch': {torch.float16: 2.0e-4, torch.bfloat16: 1.3e-3},
        'grads': {'float16': (0.0016, 0.0028), 'bfloat16': (0.014, 0.027)},
    },
}[_cpu_kind()]


def _build(config):
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    # The losses only: the logged health figures are no part of training.
    model = MODELS.build(
        dict(Config.fromfile(str(config)).model, log_health=False))
    model.init_weights()
    return model.train()


@pytest.mark.parametrize('dtype', DTYPES)
def test_loss_functions_reduce_in_fp32_under_autocast(dtype):
    # 64 images x 256 patches x 256 outputs: the per-view sum is ~1e6,
    # far past fp16's 65,504.
    torch.manual_seed(0)
    s = torch.randn(2, 64, 256, 256)
    q = torch.randn(2, 64, 256, 256).softmax(-1)
    ref_patch = per_view_patch_cross_entropy(s, q, 0.1)
    ref_cls = cross_view_cross_entropy(s[:, :, 0], q[:, :, 0], 0.1)
    with torch.autocast('cpu', dtype=dtype):
        patch = per_view_patch_cross_entropy(s.to(dtype), q, 0.1)
        cls = cross_view_cross_entropy(s[:, :, 0].to(dtype), q[:, :, 0], 0.1)
    assert patch.dtype == cls.dtype == torch.float32
    # Only the rounding of the inputs to ``dtype`` differs (the same on
    # every CPU): measured 2.7e-6 (fp16) and 6.6e-5 (bf16); 2x that.
    rtol = 6e-6 if dtype is torch.float16 else 1.4e-4
    torch.testing.assert_close(patch, ref_patch, rtol=rtol, atol=0)
    torch.testing.assert_close(cls, ref_cls, rtol=rtol, atol=0)


@pytest.mark.parametrize('dtype', DTYPES)
def test_matching_similarities_are_fp32_under_autocast(dtype):
    # Near-tied neighbours: half-precision similarities would reorder them.
    torch.manual_seed(0)
    x = torch.randn(2, 14 * 14, 384)
    ref_idx, _ = match_positives(x, (14, 14), k=4)
    with torch.autocast('cpu', dtype=dtype):
        idx, _ = match_positives(x, (14, 14), k=4)
    assert torch.equal(idx, ref_idx)


@pytest.fixture(scope='module')
def demo_large_batch():
    """The demo model on the batch that overflowed fp16: 64 images, 2
    global crops of 128 px (256 patches each), 4 local crops of 32 px."""
    model = _build(DEMO_CFG)
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(64, 3, 128, 128, generator=g) for _ in range(2)]
    views += [torch.randn(64, 3, 32, 32, generator=g) for _ in range(4)]
    with torch.no_grad():
        ref = copy.deepcopy(model).loss(views, None)
    return model, views, ref


@pytest.mark.parametrize('dtype', DTYPES)
def test_large_batch_losses_finite_and_close_to_fp32(demo_large_batch,
                                                     dtype):
    model, views, ref = demo_large_batch
    bound = 2 * MEASURED['large_batch'][dtype]
    with torch.no_grad(), torch.autocast('cpu', dtype=dtype):
        losses = copy.deepcopy(model).loss(views, None)
    for name, value in losses.items():
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value), (name, value)
        rel = abs(value.item() - ref[name].item()) / abs(ref[name].item())
        assert rel < bound, (name, value.item(), ref[name].item())


def _grads(model, inputs, wrapper_cfg, tries=4):
    """Gradients of one step's losses (unscaled), on the shared model: the
    step is SGD with lr 0, so the weights stay the same for every dtype.

    Under fp16 the step goes through the wrapper's GradScaler, as training
    does: a step whose scaled gradients overflow is skipped and the scale
    halved, and the same batch is tried again (at most ``tries`` times);
    the gradients are those of the step taken, unscaled by the scaler.
    """
    wrapper = build_optim_wrapper(
        model, dict(wrapper_cfg, optimizer=dict(type='SGD', lr=0.0)))
    for _ in range(tries):
        model.zero_grad(set_to_none=True)
        for head in (model.head, model.patch_head):
            head.loss_module.center.zero_()  # each run starts from the same
        torch.manual_seed(1)  # the same drop-path draws in every run
        with wrapper.optim_context(model):
            losses = model.loss(inputs, None)
        wrapper.backward(sum(losses.values()))
        skipped = getattr(wrapper, 'skipped_steps', 0)
        wrapper.step()
        if getattr(wrapper, 'skipped_steps', 0) == skipped:
            break
    else:
        raise AssertionError(f'every one of {tries} fp16 steps was skipped')
    return {n: p.grad.clone() for n, p in model.named_parameters()
            if p.grad is not None}


def _assert_grads_close(grads, ref, global_tol, tensor_tol):
    """Finite fp32 gradients within ``global_tol`` (relative norm of all
    of them) and ``tensor_tol`` (the worst tensor) of ``ref``."""
    assert grads.keys() == ref.keys()
    # Softmax ignores key biases: their exact gradient is 0 and both runs
    # give only rounding noise, so relative errors mean nothing there.
    names = [n for n in ref if not n.endswith('attn.k.bias')]
    for n in names:
        assert grads[n].dtype == torch.float32 and torch.isfinite(
            grads[n]).all(), n
    flat = torch.cat([grads[n].flatten() for n in names])
    flat_ref = torch.cat([ref[n].flatten() for n in names])
    err = ((flat - flat_ref).norm() / flat_ref.norm()).item()
    assert err < global_tol, err
    worst = max(names, key=lambda n: (grads[n] - ref[n]).norm() /
                ref[n].norm())
    err = ((grads[worst] - ref[worst]).norm() / ref[worst].norm()).item()
    assert err < tensor_tol, (worst, err)


@pytest.fixture(scope='module')
def paper_model_and_views():
    """ViT-S/16 with the 65536/4096 heads, the paper's 224/96 crops (2
    global, 2 local), one image: the depth, widths and grids of the paper.
    The paper's 8 local crops and a second image only add tokens, and CPU
    half precision (emulated on CPUs without native fp16/bf16) made the
    two dtypes take 250 s of the suite."""
    model = _build(PAPER_CFG)
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(1, 3, 224, 224, generator=g) for _ in range(2)]
    views += [torch.randn(1, 3, 96, 96, generator=g) for _ in range(2)]
    ref = _grads(model, views, dict(type='SelfPatchOptimWrapper'))
    return model, views, ref


# 2x the errors measured at these shapes on the CPU kind that runs the test
# (MEASURED above): bf16's 8-bit mantissa, through 12 blocks, the positives
# chosen from bf16 tokens and the prototype layer (the worst tensor on both
# kinds is a head's last layer). At 2 images and 8 local crops an Intel Xeon
# measured bf16 6.1% / 15% (docs/training_on_gpus.md).
GRAD_TOLERANCE = {k: (2 * g, 2 * t) for k, (g, t) in MEASURED['grads'].items()}


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_paper_shape_gradients_match_fp32(paper_model_and_views, dtype):
    model, views, ref = paper_model_and_views
    grads = _grads(model, views,
                   dict(type='SelfPatchAmpOptimWrapper', dtype=dtype))
    _assert_grads_close(grads, ref, *GRAD_TOLERANCE[dtype])


@pytest.fixture(scope='module')
def demo_large_batch_grads(demo_large_batch):
    """fp32 gradients of the demo model on the batch that overflowed fp16
    (its losses overflow fp16 without the fp32 regions)."""
    model, views, _ = demo_large_batch
    return model, views, _grads(model, views,
                                dict(type='SelfPatchOptimWrapper'))


# Measured as above at those shapes: fp16 0.099% / 0.35%
# (patch_head.mlp.0.weight), bf16 0.60% / 3.4% (a backbone FFN weight).
# With the default dynamic scale (2^16) fp16's scaled gradients overflow
# there (at 32 images the scaler skipped 5 steps before 2^11 went
# through); the test starts at 2^11, as each try costs a CPU-emulated fp16
# step.
OVERFLOW_GRAD_TOLERANCE = {'float16': (0.002, 0.007),
                           'bfloat16': (0.012, 0.07)}


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_overflow_shape_gradients_match_fp32(demo_large_batch_grads, dtype):
    model, views, ref = demo_large_batch_grads
    cfg = dict(type='SelfPatchAmpOptimWrapper', dtype=dtype)
    if dtype == 'float16':
        cfg['loss_scale'] = dict(init_scale=2.0**11)
    grads = _grads(model, views, cfg)
    _assert_grads_close(grads, ref, *OVERFLOW_GRAD_TOLERANCE[dtype])
