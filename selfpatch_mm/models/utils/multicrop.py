# Copyright (c) selfpatch_mm contributors. All rights reserved.
from typing import List, Tuple

import torch

__all__ = ['group_views']


def group_views(views: List[torch.Tensor]) -> List[Tuple[torch.Tensor, int]]:
    """Batch consecutive views of equal size, as the official
    ``MultiCropWrapper`` does, so each resolution is one forward pass.

    Args:
        views (list[Tensor]): ``(B, 3, H_v, W_v)`` per view.

    Returns:
        list[tuple[Tensor, int]]: ``(n*B, 3, H, W)`` and ``n`` per group.
    """
    groups, start = [], 0
    for i in range(1, len(views) + 1):
        if i == len(views) or views[i].shape[-2:] != views[start].shape[-2:]:
            groups.append((torch.cat(views[start:i]), i - start))
            start = i
    return groups
