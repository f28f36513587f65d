"""The SelfPatch algorithm: losses, teacher, DINO baseline switch."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import selfpatch_mm.models  # noqa: F401
from selfpatch_mm.models.utils import group_views

DEMO = 'configs/selfpatch/selfpatch_vit-tiny-p8_1xb8-2e_demo.py'


def _model(**overrides):
    cfg = Config.fromfile(DEMO).model
    cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _views(b=2):
    return [torch.randn(b, 3, 64, 64) for _ in range(2)] + \
        [torch.randn(b, 3, 32, 32) for _ in range(4)]


def test_teacher_starts_as_student_and_is_frozen():
    model = _model()
    student = model._student_params()
    teacher = list(model.teacher.parameters())
    assert len(student) == len(teacher)
    assert all(torch.equal(s, t) for s, t in zip(student, teacher))
    assert not any(t.requires_grad for t in teacher)
    model.train()
    assert model.backbone.training and not model.teacher.training


def test_update_teacher_is_ema():
    model = _model()
    with torch.no_grad():
        for p in model._student_params():
            p.add_(1.0)
    before = [t.clone() for t in model.teacher.parameters()]
    model.update_teacher(0.9)
    for t0, t, s in zip(before, model.teacher.parameters(),
                        model._student_params()):
        torch.testing.assert_close(t, 0.9 * t0 + 0.1 * s)


def test_loss_terms_gradients_and_centres():
    model = _model().train()
    centers = [h.loss_module.center.clone()
               for h in (model.head, model.patch_head)]
    teacher = copy.deepcopy(model.teacher.state_dict())
    losses = model.loss(_views(), None)
    assert {k for k in losses if 'loss' in k} == {'loss_cls', 'loss_patch'}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.patch_embed.projection.weight.grad is not None
    assert model.patch_head.mlp[0].weight.grad is not None
    assert all(p.grad is None for p in model.teacher.parameters())
    for h, c in zip((model.head, model.patch_head), centers):
        assert not torch.equal(h.loss_module.center, c)
    # The loss never moves the teacher; only update_teacher does.
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher[k])


def test_patch_loss_weight_is_lambda():
    views = _views()
    model = _model().eval()  # no stochastic depth: two runs must agree
    model.patch_head.loss_module.loss_weight = 1.0
    full = model.loss(views, None)['loss_patch']
    model = _model().eval()
    assert torch.allclose(model.loss(views, None)['loss_patch'], 0.1 * full,
                          rtol=1e-4)


def test_dino_baseline_has_no_patch_branch():
    model = _model(with_patch_loss=False, patch_head=None)
    assert model.patch_head is None and 'patch_head' not in model.teacher
    losses = model.loss(_views(), None)
    assert {k for k in losses if 'loss' in k} == {'loss_cls'}
    assert not any(k.startswith('health/patch') for k in losses)


def test_patch_loss_requires_patch_head():
    with pytest.raises(ValueError, match='patch_head'):
        _model(patch_head=None)


def test_tensor_mode_returns_patch_features():
    model = _model().eval()
    feats = model(torch.randn(2, 3, 64, 48), mode='tensor')
    assert feats[-1].shape == (2, 96, 8, 6)




@pytest.mark.parametrize('net', ['student', 'teacher'])
def test_one_head_call_equals_per_group_heads(net):
    """``_encode`` runs each head once over all resolutions; the logits equal
    per-group head calls (the official per-resolution forward)."""
    model = _model().eval()
    module = model if net == 'student' else model.teacher
    views = group_views(_views())
    cls, patch, _ = model._encode(module, views,
                                  neighbours=net == 'teacher')
    start = 0
    for (crops, n), p in zip(views, patch):
        c, tokens = module.neck(module.backbone(crops),
                                with_neighbours=net == 'teacher')
        torch.testing.assert_close(cls[start:start + n],
                                   module.head(c).unflatten(0, (n, -1)))
        torch.testing.assert_close(
            p, module.patch_head(tokens).unflatten(0, (n, -1)))
        start += n
