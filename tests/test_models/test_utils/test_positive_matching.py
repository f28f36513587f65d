"""Parity of positive matching with the official SelfPatch code.

Reference: alinlab/SelfPatch@81aef14, selfpatch_vision_transformer.py,
``SelfPatchHead.get_local_index`` and the ``loc=True`` branch of
``SelfPatchHead.forward`` (re-written below from the formulas).
"""
import math

import pytest
import torch
import torch.nn.functional as F

from selfpatch_mm.models.utils import match_positives, neighbour_index


def official_local_index(n_patches: int, k_size: int = 3) -> torch.Tensor:
    """Square grid, modulo wrap-around, neighbours in ascending flat index."""
    side = int(math.sqrt(n_patches))
    rows = []
    for i in range(n_patches):
        ix, iy = i // side, i % side
        wx, wy = torch.zeros(side), torch.zeros(side)
        wx[ix] = wy[iy] = 1
        for j in range(1, k_size // 2 + 1):
            wx[(ix + j) % side] = wx[(ix - j) % side] = 1
            wy[(iy + j) % side] = wy[(iy - j) % side] = 1
        weight = (wy.unsqueeze(0) * wx.unsqueeze(1)).view(-1)
        weight[i] = 0
        rows.append(weight.nonzero().squeeze())
    return torch.stack(rows)


def official_positives(x: torch.Tensor, local_idx: torch.Tensor,
                       k: int) -> torch.Tensor:
    """Indices (into the neighbour list) of the top-k, as officially."""
    x_norm = F.normalize(x, dim=-1)
    sim = x_norm[:, local_idx] @ x_norm.unsqueeze(2).transpose(-2, -1)
    return sim.squeeze(-1).topk(k=k, dim=-1)[1]


@pytest.mark.parametrize('side', [14, 6])
def test_neighbour_index_matches_official_wrap(side):
    index, valid = neighbour_index((side, side), 3, 'wrap')
    assert torch.equal(index, official_local_index(side * side, 3))
    assert bool(valid.all())


def test_wrap_around_at_the_border():
    index, _ = neighbour_index((6, 6), 3, 'wrap')
    # Patch 0 (top-left) wraps to the last row and column.
    assert index[0].tolist() == [1, 5, 6, 7, 11, 30, 31, 35]


def test_valid_border_masks_outside_neighbours():
    index, valid = neighbour_index((4, 5), 3, 'valid')
    assert valid.sum(1).tolist()[:5] == [3, 5, 5, 5, 3]
    assert index[0][valid[0]].tolist() == [1, 5, 6]
    # Interior patch 6 (row 1, col 1) has all 8 neighbours.
    assert index[6].tolist() == [0, 1, 2, 5, 7, 10, 11, 12]


@pytest.mark.parametrize('side', [14, 6])
def test_match_positives_matches_official(side):
    torch.manual_seed(0)
    x = torch.randn(3, side * side, 16)
    local_idx = official_local_index(side * side)
    expected = torch.gather(
        local_idx.expand(3, -1, -1), 2, official_positives(x, local_idx, 4))
    idx, valid = match_positives(x, (side, side), k=4)
    assert idx.shape == (3, side * side, 4)
    assert torch.equal(idx, expected)
    assert bool(valid.all())


def test_match_positives_non_square_picks_most_similar():
    torch.manual_seed(0)
    h, w = 5, 7
    x = torch.randn(2, h * w, 8)
    idx, _ = match_positives(x, (h, w), k=2, border='valid')
    index, valid = neighbour_index((h, w), 3, 'valid')
    xn = F.normalize(x, dim=-1)
    for b in range(2):
        for i in (0, 17, 34):
            cands = index[i][valid[i]]
            sims = xn[b, cands] @ xn[b, i]
            assert set(idx[b, i].tolist()) == set(
                cands[sims.topk(2).indices].tolist())


def test_invalid_slots_are_marked_when_k_exceeds_valid_neighbours():
    x = torch.randn(1, 9, 8)
    _, valid = match_positives(x, (3, 3), k=4, border='valid')
    # Corner patches have only 3 in-grid neighbours.
    assert valid[0, 0].sum() == 3 and valid[0, 4].sum() == 4


def test_tables_are_cached_per_grid():
    a = neighbour_index((14, 14), 3, 'wrap')
    b = neighbour_index((14, 14), 3, 'wrap')
    assert a[0] is b[0]


@pytest.mark.parametrize('kwargs, match', [
    (dict(hw=(2, 5), border='wrap'), 'at least 3x3'),
    (dict(hw=(4, 4), border='circular'), 'border must be one of'),
    (dict(hw=(4, 4), window=4), 'odd number'),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        neighbour_index(**kwargs)
