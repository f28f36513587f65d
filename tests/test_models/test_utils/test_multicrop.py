"""Grouping views by resolution (the official ``MultiCropWrapper``)."""
import torch

from selfpatch_mm.models.utils import group_views


def test_group_views_batches_consecutive_equal_sizes():
    views = [torch.full((3, 3, 8, 8), float(i)) for i in range(2)] + \
        [torch.full((3, 3, 4, 4), float(i)) for i in range(2, 5)] + \
        [torch.zeros(3, 3, 8, 8)]
    groups = group_views(views)
    assert [(tuple(x.shape), n) for x, n in groups] == [
        ((6, 3, 8, 8), 2), ((9, 3, 4, 4), 3), ((3, 3, 8, 8), 1)]
    # View-major order: the first B rows are view 0, as torch.cat gives.
    assert groups[1][0][:3].eq(2).all() and groups[1][0][3:6].eq(3).all()
