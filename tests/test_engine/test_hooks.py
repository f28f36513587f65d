"""Training mechanics: teacher EMA, temperature warm-up, frozen last layer.

Reference schedules: alinlab/SelfPatch@81aef14, utils.py
``cosine_scheduler`` (momentum 0.996 -> 1 over all iterations) and
main_selfpatch.py ``DINOLoss.teacher_temp_schedule`` and
``utils.cancel_gradients_last_layer``.
"""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from selfpatch_mm.engine import (FreezeLastLayerHook, SelfPatchOptimWrapper,
                                 TeacherEMAHook, TeacherTempWarmupHook)


def official_cosine(base, final, epochs, niter, warmup_epochs=0):
    warmup = np.linspace(0, base, warmup_epochs * niter)
    iters = np.arange(epochs * niter - warmup_epochs * niter)
    sched = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters /
                                                       len(iters)))
    return np.concatenate((warmup, sched))


class Teacher(nn.Module):
    """Stand-in with the algorithm's public API."""

    def __init__(self):
        super().__init__()
        self.student = nn.Linear(3, 3)
        self.teacher = nn.Linear(3, 3)
        self.teacher.load_state_dict(self.student.state_dict())
        self.momenta, self.temps = [], []

    def update_teacher(self, m):
        self.momenta.append(m)

    def set_teacher_temp(self, t):
        self.temps.append(t)


def _runner(model, epoch=0, it=0, max_iters=1, optim_wrapper=None):
    hub = SimpleNamespace(update_scalar=lambda *a, **k: None)
    return SimpleNamespace(model=model, epoch=epoch, iter=it,
                           max_iters=max_iters, message_hub=hub,
                           optim_wrapper=optim_wrapper)


def _counting_wrapper(max_iters, accumulative_counts=1):
    wrapper = SelfPatchOptimWrapper(
        optimizer=torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1),
        accumulative_counts=accumulative_counts)
    wrapper.initialize_count_status(nn.Linear(1, 1), 0, max_iters)
    return wrapper


def _run_ema_hook(max_iters, accumulative_counts):
    """Momenta the hook applies, and at which iterations, with a real
    wrapper counting backward passes as the train loop does."""
    hook, model = TeacherEMAHook(0.996, 1.0), Teacher()
    wrapper = _counting_wrapper(max_iters, accumulative_counts)
    runner = _runner(model, max_iters=max_iters, optim_wrapper=wrapper)
    hook.before_train(runner)
    moved = []
    for it in range(max_iters):
        wrapper._inner_count += 1  # what backward() does
        runner.iter, before = it, len(model.momenta)
        hook.after_train_iter(runner, it)
        if len(model.momenta) > before:
            moved.append(it)
    return model.momenta, moved


def test_ema_momentum_follows_official_cosine_schedule():
    epochs, niter = 3, 5
    ref = official_cosine(0.996, 1.0, epochs, niter)
    momenta, moved = _run_ema_hook(epochs * niter, 1)
    assert moved == list(range(epochs * niter))
    np.testing.assert_allclose(momenta, ref, rtol=0, atol=1e-12)


def test_ema_under_accumulation_follows_optimizer_steps():
    # 15 iterations, 2 per step: steps end at iterations 1, 3, ..., 13 and
    # at the last one (14), which mmengine steps on with 1 micro-batch.
    momenta, moved = _run_ema_hook(15, 2)
    assert moved == [1, 3, 5, 7, 9, 11, 13, 14]
    ref = official_cosine(0.996, 1.0, 1, 8)  # cosine over the 8 steps
    np.testing.assert_allclose(momenta, ref, rtol=0, atol=1e-12)


def test_ema_hook_rejects_plain_optim_wrapper():
    from mmengine.optim import OptimWrapper
    plain = OptimWrapper(torch.optim.SGD(nn.Linear(1, 1).parameters(), 0.1))
    with pytest.raises(TypeError, match='SelfPatchOptimWrapper'):
        TeacherEMAHook().before_train(_runner(Teacher(), optim_wrapper=plain))


def test_teacher_temperature_warmup_matches_official():
    warm, temp, warm_epochs, epochs = 0.04, 0.07, 4, 7
    ref = np.concatenate((np.linspace(warm, temp, warm_epochs),
                          np.ones(epochs - warm_epochs) * temp))
    hook, model = TeacherTempWarmupHook(warm, temp, warm_epochs), Teacher()
    for epoch in range(epochs):
        hook.before_train_epoch(_runner(model, epoch=epoch))
    np.testing.assert_allclose(model.temps, ref)


def _net_and_wrapper():
    torch.manual_seed(0)
    net = nn.Module()
    net.body = nn.Linear(4, 4)
    net.last_layer = nn.Linear(4, 2)
    wrapper = SelfPatchOptimWrapper(
        optimizer=torch.optim.AdamW(net.parameters(), lr=0.1),
        clip_grad=dict(type='per_param', max_norm=3.0))
    return net, wrapper


@pytest.mark.parametrize('epoch, frozen', [(0, True), (1, False)])
def test_last_layer_frozen_in_first_epoch_only(epoch, frozen):
    net, wrapper = _net_and_wrapper()
    FreezeLastLayerHook(num_epochs=1).before_train_epoch(
        _runner(net, epoch=epoch, optim_wrapper=wrapper))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    wrapper.update_params(net.last_layer(net.body(torch.randn(8, 4))).sum())
    after = net.state_dict()
    assert not torch.equal(after['body.weight'], before['body.weight'])
    assert torch.equal(after['last_layer.weight'],
                       before['last_layer.weight']) == frozen
    # No AdamW state either, as with the official grad = None.
    assert (net.last_layer.weight not in wrapper.optimizer.state) == frozen


def test_freeze_hook_rejects_plain_optim_wrapper():
    from mmengine.optim import OptimWrapper
    net, _ = _net_and_wrapper()
    plain = OptimWrapper(torch.optim.SGD(net.parameters(), lr=0.1))
    with pytest.raises(TypeError, match='SelfPatchOptimWrapper'):
        FreezeLastLayerHook().before_train_epoch(
            _runner(net, optim_wrapper=plain))
