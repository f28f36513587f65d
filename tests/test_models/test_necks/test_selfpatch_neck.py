"""Parity of the aggregation module with the official ``SelfPatchHead``.

Reference: alinlab/SelfPatch@81aef14, selfpatch_vision_transformer.py
(``Class_Attention``, ``LayerScale_Block_CA``, ``SelfPatchHead.forward``),
re-written with explicit loops over blocks and the official tensor layout
in ``tests/reference/official_step.py`` (which the benchmark
also times), and run with the weights of our module.
"""
import pytest
import torch

from selfpatch_mm.models.necks import SelfPatchNeck
from reference.official_step import official_aggregate, official_block


def _neck(dim=32, heads=4, **kwargs):
    torch.manual_seed(0)
    neck = SelfPatchNeck(in_channels=dim, num_heads=heads, **kwargs)
    neck.init_weights()
    # Non-trivial norms so a missing or misplaced norm shows up.
    for name, p in neck.named_parameters():
        if 'norm' in name:
            p.data.normal_(1 if name.endswith('weight') else 0, 0.1)
    return neck.eval()


def _featmap(x, hw):
    return [x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw)]


@pytest.mark.parametrize('side', [14, 6])
@pytest.mark.parametrize('with_neighbours', [False, True])
def test_neck_matches_official(side, with_neighbours):
    neck = _neck()
    x = torch.randn(2, side * side, 32)
    expected = official_aggregate(neck, x, with_neighbours, k=4)
    cls, patches = neck(_featmap(x, (side, side)), with_neighbours)
    torch.testing.assert_close(cls, expected[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(patches, expected[:, 1:], rtol=1e-5,
                               atol=1e-5)


def test_student_patches_are_normalised_inputs():
    neck = _neck()
    x = torch.randn(2, 36, 32)
    _, patches = neck(_featmap(x, (6, 6)))
    torch.testing.assert_close(patches, neck.norm(x))


def test_non_square_grid_and_valid_border():
    """On a 4x7 grid, a neighbour planted as a scaled copy of patch (1, 3)
    is its first positive, and that patch's summary is the official block
    over exactly its positives."""
    neck = _neck(border='valid', num_blocks=1)
    torch.manual_seed(1)
    x = torch.randn(2, 4 * 7, 32)
    target, planted = 1 * 7 + 3, 2 * 7 + 4  # (1, 3) and its (2, 4)
    x[:, planted] = 3 * x[:, target]  # cosine similarity exactly 1
    cls, patches = neck(_featmap(x, (4, 7)), with_neighbours=True)
    assert cls.shape == (2, 32) and patches.shape == (2, 28, 32)
    idx, valid = neck.positives(x, (4, 7))
    assert idx[:, target, 0].tolist() == [planted, planted]
    assert bool(valid[:, target].all())  # an inner patch: all k in the grid
    ref = official_block(neck.blocks[0], x[:1, idx[0, target]],
                         neck.cls_token)
    torch.testing.assert_close(patches[0, target], neck.norm(ref)[0, 0],
                               rtol=1e-5, atol=1e-5)


def test_valid_border_ignores_masked_positives():
    """A corner patch of a 3x3 grid has 3 in-grid neighbours; the 4th
    (invalid) slot must not change its summary."""
    neck = _neck(border='valid', num_blocks=1)
    x = torch.randn(1, 9, 32)
    _, patches = neck(_featmap(x, (3, 3)), with_neighbours=True)
    idx, valid = neck.positives(x, (3, 3))
    keep = idx[0, 0][valid[0, 0]]
    blk = neck.blocks[0]
    ref = official_block(blk, x[:, keep], neck.cls_token)
    torch.testing.assert_close(patches[0, 0], neck.norm(ref)[0, 0],
                               rtol=1e-5, atol=1e-5)


def test_cls_attention_shape_and_mass():
    neck = _neck()
    x = torch.randn(2, 20, 32)
    attn = neck.cls_attention(_featmap(x, (4, 5)))
    assert attn.shape == (2, 4, 4, 5)
    total = attn.sum((-2, -1))
    assert bool(((total > 0) & (total < 1)).all())
    # Known answer: zero query weights make every score equal, so each of
    # the 20 patches gets 1/21 (the query token itself takes the rest).
    blk = neck.blocks[-1]
    blk.attn.q.weight.data.zero_()
    blk.attn.q.bias.data.zero_()
    uniform = neck.cls_attention(_featmap(x, (4, 5)))
    torch.testing.assert_close(uniform, torch.full_like(uniform, 1 / 21))


def test_gradients_flow_through_student_path():
    neck = _neck().train()
    x = torch.randn(2, 16, 32, requires_grad=True)
    cls, patches = neck(_featmap(x, (4, 4)))
    (cls.sum() + patches.sum()).backward()
    assert x.grad is not None and neck.cls_token.grad is not None
