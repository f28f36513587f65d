"""A whole SelfPatch training step of the package (the demo config's model,
optimizer wrapper and hooks) against the official step
(``official_selfpatch_step.py``, written from alinlab/SelfPatch@81aef14
``main_selfpatch.py`` and ``utils.py``): both losses, backward, the
per-parameter clipping, the frozen last layers of the first epoch, AdamW
with the official weight-decay groups, the EMA teacher and both centres.

Tiny ViT (the demo's: 96-d, 4 blocks, patch 8), 2 images, 2 global crops
of 64 px and 2 local crops of 32 px, fp32. Measured: ``loss_cls`` equal,
``loss_patch`` 2.7e-5 apart (relative), the gradients into AdamW within
1e-4 of each tensor's norm, the student after the step within 8e-4 of
each tensor's step (AdamW's first step is the gradient's sign, so an
element whose gradient is near rounding noise can take either), teacher
within 3e-7 and the centres within 2e-8; each bound below says its margin.
The teacher is moved away from the student and the centres are non-zero,
so the teacher's path, the centring and the EMA all count. Stochastic
depth is off (the official student's 0.1 draws its own masks).
"""
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from helpers import DEMO_CONFIG
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import selfpatch_mm.engine  # noqa: F401
import selfpatch_mm.models  # noqa: F401
from selfpatch_mm.engine.hooks import FreezeLastLayerHook, TeacherEMAHook

sys.path.insert(0, str(Path(__file__).parent))
from official_selfpatch_step import OfficialSelfPatch  # noqa: E402

LR, WD = 5e-4, 0.04  # the first step's lr and weight decay of both
PARTS = ('backbone', 'neck', 'head', 'patch_head')


@pytest.fixture(scope='module')
def steps():
    """Our step and the official one from the same weights and batch."""
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.model.backbone.drop_path_rate = 0.0
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg.model, log_health=False))
    model.init_weights()
    model.train()
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(0.01 * torch.randn_like(p))
        for head in (model.head, model.patch_head):
            head.loss_module.center.normal_(0, 0.1)
    g = torch.Generator().manual_seed(1)
    sizes = (64, 64, 32, 32)
    data = dict(
        inputs=[torch.randint(0, 256, (2, 3, s, s), generator=g,
                              dtype=torch.uint8) for s in sizes],
        data_samples=[DataSample() for _ in range(2)])
    momentum = TeacherEMAHook().momentum_at(0, 100)  # first step: 0.996

    ref = OfficialSelfPatch(model, LR, WD)
    before_centres = [h.loss_module.center.detach().clone().view(-1)
                      for h in (model.head, model.patch_head)]
    images = model.data_preprocessor(data, True)['inputs']
    ref_out = ref.train_step(images, epoch=0, momentum=momentum)

    wrapper_cfg = dict(cfg.optim_wrapper)
    wrapper_cfg['optimizer'] = dict(wrapper_cfg['optimizer'], lr=LR,
                                    weight_decay=WD)
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    FreezeLastLayerHook(num_epochs=1).before_train_epoch(
        SimpleNamespace(optim_wrapper=wrapper, model=model, epoch=0))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {}
    adamw_step = wrapper.optimizer.step

    def step(*args, **kwargs):
        # the gradients AdamW gets: after clipping and the frozen layers
        grads.update({n: None if p.grad is None else p.grad.clone()
                      for n, p in model.named_parameters()
                      if not n.startswith('teacher.')})
        return adamw_step(*args, **kwargs)

    with mock.patch.object(wrapper.optimizer, 'step', step):
        ours = model.train_step(data, wrapper)
    model.update_teacher(momentum)
    return SimpleNamespace(model=model, ours=ours, ref=ref, ref_out=ref_out,
                           grads=grads, before=before,
                           before_centres=before_centres,
                           optimizer=wrapper.optimizer)


def _ref_params(net) -> dict:
    return {f'{part}.{n}': p for part in PARTS
            for n, p in getattr(net, part).named_parameters()}


def _key_bias(name: str) -> bool:
    """Softmax ignores key biases: their exact gradient is 0, both steps
    see rounding noise (1e-9 here), and AdamW's first step turns any noise
    into a full step of either sign."""
    return name.endswith('attn.k.bias')


def test_losses(steps):
    """cls to 1e-5; patch to 1e-4: ours sums each view's cross-entropy in
    one fp32 einsum, the official code with torch.sum per token then a
    mean, 2.7e-5 apart at this size (the same in float64 forwards: the
    losses cast to fp32)."""
    ours, ref = steps.ours, steps.ref_out
    torch.testing.assert_close(ours['loss_cls'], ref['c_loss'], atol=0,
                               rtol=1e-5)
    torch.testing.assert_close(ours['loss_patch'], 0.1 * ref['p_loss'],
                               atol=0, rtol=1e-4)
    torch.testing.assert_close(ours['loss'], ref['loss'], atol=0, rtol=1e-4)


def test_gradients_into_adamw(steps):
    """Backward, per-parameter clipping and the frozen last layers: the
    gradients AdamW gets agree to 1e-3 of each tensor's norm (measured
    1e-4 at most), the last layers get none."""
    ref = _ref_params(steps.ref.student)
    assert steps.grads.keys() == ref.keys()
    for name, grad in steps.grads.items():
        want = ref[name].grad
        if 'last_layer' in name:
            assert grad is None and want is None, name
        elif _key_bias(name):
            assert grad.norm() < 1e-7 and want.norm() < 1e-7, name
        else:
            err = ((grad - want).norm() / want.norm()).item()
            assert err < 1e-3, (name, err)
    # clipping did act: some official gradient was clipped to 3.0
    assert any(p.grad is not None and abs(p.grad.norm().item() - 3.0) < 1e-4
               for p in ref.values())


def test_adamw_groups(steps):
    """Every parameter's lr, and weight decay as the official groups give
    it (none on biases and 1-D tensors), betas and eps as the official
    AdamW's defaults."""
    official = {}
    for i, group in enumerate(steps.ref.optimizer.param_groups):
        for p in group['params']:
            official[id(p)] = group
    ref = _ref_params(steps.ref.student)
    ours = dict(steps.model.named_parameters())
    groups = {id(p): g for g in steps.optimizer.param_groups
              for p in g['params']}
    for name, p in ref.items():
        if 'last_layer' in name and not ours[name].requires_grad:
            continue  # weight-norm magnitude, fixed (norm_last_layer)
        got, want = groups[id(ours[name])], official[id(p)]
        assert (got['lr'], got['weight_decay']) == (
            want['lr'], want['weight_decay']), name
        assert (got['betas'], got['eps']) == (want['betas'],
                                              want['eps']), name


def test_student_after_the_step(steps):
    """Each tensor within 1e-2 of its step's size (measured 8e-4 at most:
    a few elements whose gradient is near the noise level, where AdamW's
    first step is a sign), and within 1e-4 = 0.2 lr everywhere."""
    ours = dict(steps.model.named_parameters())
    for name, want in _ref_params(steps.ref.student).items():
        if _key_bias(name):
            continue
        moved = (want - steps.before[name]).norm()
        err = (ours[name] - want).norm()
        assert err <= 1e-2 * moved + 1e-7, (name, err, moved)
        torch.testing.assert_close(ours[name], want, atol=1e-4, rtol=0,
                                   msg=name)


def test_teacher_after_the_ema(steps):
    """The teacher moved by 0.004 of its distance to the student (about
    4e-5), and agrees to 1e-6."""
    ours = dict(steps.model.teacher.named_parameters())
    moved = 0.0
    for name, want in _ref_params(steps.ref.teacher).items():
        got = ours[name]
        moved = max(moved, (want - steps.before['teacher.' + name]).abs(
        ).max().item())
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0, msg=name)
    assert moved > 1e-5


def test_both_centres(steps):
    heads = (steps.model.head, steps.model.patch_head)
    for head, want in zip(heads, (steps.ref.center, steps.ref.patch_center)):
        got = head.loss_module.center.view(-1)
        torch.testing.assert_close(got, want.view(-1), atol=1e-6, rtol=0)
        # and the update moved them (from N(0, 0.1) towards the batch mean)
        assert (got - steps.before_centres[head is heads[1]]).abs().max(
        ) > 1e-3
