"""Parity of both losses and their centres with the official ``DINOLoss``.

Reference: alinlab/SelfPatch@81aef14, main_selfpatch.py, ``DINOLoss.forward``
(the double loop over teacher and student views), ``update_center`` and
``update_patch_center``; re-written below for a single process.
"""
import pytest
import torch
import torch.nn.functional as F

from selfpatch_mm.models.losses import (DINOLoss, PatchLoss,
                                        cross_view_cross_entropy,
                                        per_view_patch_cross_entropy)


def official_losses(s_cls, s_loc, t_cls, t_loc, center, patch_center, temp,
                    s_temp=0.1, m=0.9):
    """Lists of per-view tensors as the official chunks produce them:
    cls (B, 1, K) and loc (B, N_v, K'). Returns c_loss, p_loss and the
    updated centres."""
    ncrops = len(t_cls)
    c_loss = p_loss = 0
    n_terms = m_terms = 0
    for iq in range(ncrops):
        q_cls = F.softmax((t_cls[iq] - center) / temp, dim=-1)
        for v in range(ncrops):
            if v == iq:
                q_pat = F.softmax((t_loc[iq] - patch_center) / temp, dim=-1)
                loss = torch.sum(
                    -q_pat * F.log_softmax(s_loc[v] / s_temp, dim=-1), -1)
                p_loss += loss.mean()
                m_terms += 1
            else:
                if iq > 1:
                    continue
                loss = torch.sum(
                    -q_cls * F.log_softmax(s_cls[v] / s_temp, dim=-1), -1)
                c_loss += loss.mean()
                n_terms += 1
    t_all = torch.cat(t_cls)
    new_center = center * m + t_all.sum(0, keepdim=True) / len(t_all) * (1 - m)
    num = sum(t.shape[0] * t.shape[1] for t in t_loc)
    batch_pc = sum(t.sum(1).sum(0, keepdim=True) for t in t_loc) / num
    new_pc = patch_center * m + batch_pc * (1 - m)
    return c_loss / n_terms, p_loss / m_terms, new_center, new_pc


@pytest.fixture
def outputs():
    torch.manual_seed(0)
    B, K, P = 3, 50, 20
    grids = [16] * 2 + [4] * 4  # 2 global views, 4 local views
    s_cls = [torch.randn(B, 1, K) for _ in grids]
    t_cls = [torch.randn(B, 1, K) for _ in grids]
    s_loc = [torch.randn(B, n, P) for n in grids]
    t_loc = [torch.randn(B, n, P) for n in grids]
    return s_cls, t_cls, s_loc, t_loc


def _stack(views):  # list of (B, ...) -> (V, B, ...)
    return torch.stack(views)


def test_cls_and_patch_losses_match_official(outputs):
    s_cls, t_cls, s_loc, t_loc = outputs
    K, P = s_cls[0].shape[-1], s_loc[0].shape[-1]
    cls_loss = DINOLoss(K, teacher_temp=0.04)
    patch_loss = PatchLoss(P, teacher_temp=0.04, loss_weight=0.1)
    cls_loss.center.normal_()
    patch_loss.center.normal_()
    c_ref, p_ref, center_ref, pc_ref = official_losses(
        s_cls, s_loc, t_cls, t_loc, cls_loss.center.clone()[None],
        patch_loss.center.clone(), 0.04)

    c = cls_loss(_stack(s_cls)[:, :, 0], _stack(t_cls)[:, :, 0])
    groups = [slice(0, 2), slice(2, 6)]
    p = patch_loss([_stack(s_loc[g]) for g in groups],
                   [_stack(t_loc[g]) for g in groups])
    torch.testing.assert_close(c, c_ref)
    torch.testing.assert_close(p, 0.1 * p_ref)
    torch.testing.assert_close(cls_loss.center, center_ref[0])
    torch.testing.assert_close(patch_loss.center, pc_ref)


def test_centres_move_towards_teacher_mean():
    loss = DINOLoss(8)
    teacher = torch.ones(2, 4, 8) * 5
    loss(torch.randn(6, 4, 8), teacher)
    torch.testing.assert_close(loss.center, torch.full((1, 8), 0.5))
    loss(torch.randn(6, 4, 8), teacher)
    torch.testing.assert_close(loss.center, torch.full((1, 8), 0.95))


def test_teacher_temperature_is_settable():
    loss = DINOLoss(8)
    s, t = torch.randn(4, 2, 8), torch.randn(2, 2, 8)
    a = loss(s, t).item()
    loss.center.zero_()
    loss.set_teacher_temp(0.07)
    assert loss.teacher_temp == 0.07 and loss(s, t).item() != a


def test_pure_functions_shapes():
    q = F.softmax(torch.randn(2, 3, 5), -1)
    s = torch.randn(4, 3, 5)
    assert cross_view_cross_entropy(s, q, 0.1).shape == ()
    per_view = per_view_patch_cross_entropy(
        torch.randn(2, 3, 6, 5), F.softmax(torch.randn(2, 3, 6, 5), -1), 0.1)
    assert per_view.shape == (2, )
    # Identical one-hot target and prediction give (almost) zero loss.
    onehot = F.one_hot(torch.arange(5) % 5, 5).float()[None, :, None]
    assert per_view_patch_cross_entropy(onehot * 100, onehot, 1.0) < 1e-6
