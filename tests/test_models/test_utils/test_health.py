"""Health figures: known answers, the loss modules' figures, and that
logging them changes nothing in training."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.registry import MODELS

import selfpatch_mm.models  # noqa: F401
from selfpatch_mm.models.losses import DINOLoss, PatchLoss
from selfpatch_mm.models.utils import entropy, feature_std, head_figures

DEMO = 'configs/selfpatch/selfpatch_vit-tiny-p8_1xb8-2e_demo.py'
K = 64


def test_uniform_teacher_has_entropy_fraction_one():
    q = torch.full((2, 4, K), 1.0 / K)
    fig = head_figures([q], torch.tensor(math.log(K)), torch.zeros(1, K))
    torch.testing.assert_close(fig['entropy_frac'], torch.tensor(1.0))
    torch.testing.assert_close(fig['perplexity'], torch.tensor(float(K)))
    # The student's cross-entropy to a uniform target is log K at best.
    torch.testing.assert_close(fig['kl'], torch.tensor(0.0))


def test_one_hot_teacher_on_one_prototype_has_perplexity_one():
    q = F.one_hot(torch.full((2, 4, 5), 7), K).float()
    fig = head_figures([q], torch.tensor(0.0), torch.zeros(1, K))
    assert fig['perplexity'].item() == 1.0
    assert fig['entropy_frac'].item() == 0.0


def test_perplexity_counts_prototypes_in_use():
    # One-hot targets on 8 prototypes, each used by as many positions: the
    # batch-mean is uniform on 8, whatever each target's own entropy is.
    q = F.one_hot(torch.arange(32).remainder(8), K).float().view(2, 16, K)
    fig = head_figures([q], torch.tensor(0.0), torch.zeros(1, K))
    torch.testing.assert_close(fig['perplexity'], torch.tensor(8.0))
    assert fig['entropy_frac'].item() == 0.0


def test_center_norm():
    center = torch.zeros(1, K)
    center[0, :2] = torch.tensor([3.0, 4.0])
    q = torch.full((1, 1, K), 1.0 / K)
    fig = head_figures([q], torch.tensor(math.log(K)), center)
    assert fig['center_norm'].item() == 5.0


def test_constant_features_have_std_zero():
    feats = torch.tensor([0.3, -1.2, 2.0, 0.7]).expand(10, 4)
    # 0 up to the rounding of the mean of ten equal fp32 numbers
    torch.testing.assert_close(feature_std(feats), torch.tensor(0.0),
                               atol=1e-7, rtol=0)
    # Two opposite unit directions along one axis of C=4: that axis has std
    # 1, the others 0.
    feats = torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]])
    torch.testing.assert_close(feature_std(feats), torch.tensor(0.25))


def test_entropy_of_one_hot_is_zero_not_nan():
    assert entropy(torch.tensor([0.0, 1.0, 0.0])).item() == 0.0
    torch.testing.assert_close(
        entropy(torch.tensor([0.5, 0.5])), torch.tensor(math.log(2)))


def _same_distribution_logits(loss, shape):
    """Teacher logits whose targets equal the student's distribution
    (centre 0): ``t / teacher_temp == s / student_temp``."""
    s = torch.randn(*shape)
    return s, s * loss.teacher_temp / loss.student_temp


def test_equal_teacher_and_student_give_kl_zero():
    cls = DINOLoss(K)
    # Every view the same crop, so every cross-view pair is equal too.
    s, t = _same_distribution_logits(cls, (1, 3, K))
    cls(s.expand(4, 3, K), t.expand(2, 3, K))
    torch.testing.assert_close(cls.health['kl'], torch.tensor(0.0),
                               atol=1e-5, rtol=0)
    patch = PatchLoss(K)
    s, t = _same_distribution_logits(patch, (2, 3, 9, K))
    s2, t2 = _same_distribution_logits(patch, (4, 3, 4, K))
    patch([s, s2], [t, t2])
    torch.testing.assert_close(patch.health['kl'], torch.tensor(0.0),
                               atol=1e-5, rtol=0)


def test_kl_is_the_mean_kl_of_the_loss_pairs():
    """The cross-entropy minus the teacher entropy equals the explicit mean
    KL(teacher view t | student view s) over the loss's pairs s != t."""
    torch.manual_seed(0)
    loss = DINOLoss(K, center_momentum=0.5)
    loss.center.normal_()
    s, t = torch.randn(5, 3, K), torch.randn(5, 3, K)
    log_q = F.log_softmax((t[:2] - loss.center) / loss.teacher_temp, -1)
    log_p = F.log_softmax(s / loss.student_temp, -1)
    kls = [(log_q[i].exp() * (log_q[i] - log_p[j])).sum(-1).mean()
           for i in range(2) for j in range(5) if i != j]
    center = loss.center.clone()
    loss(s, t)
    torch.testing.assert_close(loss.health['kl'], torch.stack(kls).mean(),
                               atol=1e-5, rtol=1e-5)
    # The centre the targets used, not the updated one.
    torch.testing.assert_close(loss.health['center_norm'], center.norm())


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_figures_are_fp32_under_autocast(dtype):
    loss = PatchLoss(K)
    s, t = torch.randn(2, 3, 9, K), torch.randn(2, 3, 9, K)
    with torch.autocast('cpu', dtype=dtype):
        loss([s.to(dtype)], [t.to(dtype)])
        std = feature_std(torch.randn(6, 8, dtype=dtype))
    assert std.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in loss.health.values())


def _model(**overrides):
    torch.manual_seed(0)
    model = MODELS.build(dict(Config.fromfile(DEMO).model, **overrides))
    model.init_weights()
    return model.eval()


def _views():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(2, 3, 64, 64, generator=g) for _ in range(2)] + \
        [torch.randn(2, 3, 32, 32, generator=g) for _ in range(4)]


def test_logging_the_figures_changes_no_loss_or_centre():
    on, off = _model(), _model(log_health=False)
    views = _views()
    a, b = on.loss(views, None), off.loss(views, None)
    assert not any(k.startswith('health/') for k in b)
    for key in ('loss_cls', 'loss_patch'):
        assert torch.equal(a[key], b[key]), key
    for head in ('head', 'patch_head'):
        assert torch.equal(getattr(on, head).loss_module.center,
                           getattr(off, head).loss_module.center)
    names = {f'health/{h}_{f}' for h in ('cls', 'patch')
             for f in ('entropy_frac', 'perplexity', 'kl', 'center_norm',
                       'feat_std')}
    assert set(a) - {'loss_cls', 'loss_patch'} == names
    assert not any(v.requires_grad for k, v in a.items() if k in names)


def test_figures_are_logged_not_summed_and_not_a_stop():
    model = _model()
    losses = model.loss(_views(), None)
    total, log_vars = model.parse_losses(losses)
    torch.testing.assert_close(total,
                               losses['loss_cls'] + losses['loss_patch'])
    assert 'health/cls_entropy_frac' in log_vars
    # A non-finite figure on its own is logged, not a divergence.
    losses['health/cls_kl'] = torch.tensor(float('nan'))
    _, log_vars = model.parse_losses(losses)
    assert torch.isnan(log_vars['health/cls_kl'])


def test_dino_baseline_has_cls_figures_only():
    model = _model(with_patch_loss=False, patch_head=None)
    losses = model.loss(_views(), None)
    assert {k for k in losses if k.startswith('health/')} == {
        f'health/cls_{f}' for f in ('entropy_frac', 'perplexity', 'kl',
                                    'center_norm', 'feat_std')}


def test_entropy_in_chunks_equals_one_pass(monkeypatch):
    import selfpatch_mm.models.utils.health as health
    q = torch.softmax(torch.randn(3, 5, 7, 16), -1)
    whole = health.entropy(q)
    monkeypatch.setattr(health, '_CHUNK', 16 * 4)  # 4 rows per chunk
    assert torch.equal(health.entropy(q), whole)
    assert whole.shape == (3, 5, 7)
    torch.testing.assert_close(
        whole, -(q * q.log()).sum(-1), atol=1e-6, rtol=1e-6)
