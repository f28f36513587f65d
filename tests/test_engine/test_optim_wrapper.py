"""Per-parameter gradient clipping and the paper's optimisation schedules.

Reference: alinlab/SelfPatch@81aef14, utils.py ``clip_gradients`` (each
parameter clipped on its own to norm 3.0) and ``cosine_scheduler`` (lr with
10 warm-up epochs, weight decay 0.04 -> 0.4 on group 0 only).
"""
import numpy as np
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS
from torch import nn

import selfpatch_mm.datasets  # noqa: F401  (registers our modules)
import selfpatch_mm.engine  # noqa: F401
import selfpatch_mm.models  # noqa: F401
from selfpatch_mm.engine import SelfPatchOptimWrapper, clip_grad_per_param_

CONFIG = 'configs/_base_/schedules/selfpatch_adamw_coslr-300e.py'


def official_clip(params, clip):
    for p in params:
        if p.grad is not None:
            norm = p.grad.data.norm(2)
            coef = clip / (norm + 1e-6)
            if coef < 1:
                p.grad.data.mul_(coef)


def official_cosine(base, final, epochs, niter, warmup_epochs=0):
    warmup = np.linspace(0, base, warmup_epochs * niter)
    iters = np.arange(epochs * niter - warmup_epochs * niter)
    return np.concatenate(
        (warmup, final + 0.5 * (base - final) *
         (1 + np.cos(np.pi * iters / len(iters)))))


def test_per_param_clipping_matches_official_and_not_global_norm():
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(5)) for _ in range(3)]
    grads = [torch.randn(5) * s for s in (0.1, 10.0, 100.0)]
    ref = [nn.Parameter(p.detach().clone()) for p in params]
    for p, r, g in zip(params, ref, grads):
        p.grad, r.grad = g.clone(), g.clone()
    clip_grad_per_param_(params, 3.0)
    official_clip(ref, 3.0)
    for p, r in zip(params, ref):
        torch.testing.assert_close(p.grad, r.grad)
    # The small gradient is untouched (a global-norm clip would shrink it).
    torch.testing.assert_close(params[0].grad, grads[0])
    assert abs(params[2].grad.norm().item() - 3.0) < 1e-4


def test_wrapper_applies_per_param_clip():
    net = nn.Linear(4, 4)
    wrapper = SelfPatchOptimWrapper(
        optimizer=torch.optim.SGD(net.parameters(), lr=0.0),
        clip_grad=dict(type='per_param', max_norm=0.5))
    wrapper.backward((net(torch.randn(16, 4)) * 100).sum())
    wrapper.step()
    assert net.weight.grad.norm() <= 0.5 + 1e-5
    assert net.bias.grad.norm() <= 0.5 + 1e-5


def test_paper_schedule_matches_official():
    cfg = Config.fromfile(CONFIG)
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    cfg.optim_wrapper.type = 'SelfPatchOptimWrapper'
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    # No weight decay on biases and norms (official group 1).
    decay = {
        id(p): g['weight_decay']
        for g in wrapper.param_groups for p in g['params']
    }
    assert [decay[id(p)] for p in model.parameters()] == [0.04, 0, 0, 0]
    epochs, niter = 300, 2
    schedulers = [
        PARAM_SCHEDULERS.build(
            dict(s), default_args=dict(optimizer=wrapper, epoch_length=niter))
        for s in cfg.param_scheduler
    ]
    lrs, wds = [], []
    for _ in range(epochs * niter):
        lrs.append(wrapper.param_groups[0]['lr'])
        wds.append(max(g['weight_decay'] for g in wrapper.param_groups))
        for s in schedulers:
            s.step()
    np.testing.assert_allclose(
        wds, official_cosine(0.04, 0.4, epochs, niter), rtol=1e-6)
    ref_lr = official_cosine(0.0005, 1e-6, epochs, niter, warmup_epochs=10)
    # Cosine part: identical. Warm-up: mmengine's LinearLR reaches the peak
    # one step later than np.linspace (documented deviation, < 1/20 of lr).
    np.testing.assert_allclose(lrs[20:], ref_lr[20:], rtol=1e-5)
    assert np.max(np.abs(np.array(lrs[:20]) - ref_lr[:20])) < 0.0005 / 19
