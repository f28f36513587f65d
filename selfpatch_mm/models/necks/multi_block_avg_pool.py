# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Image features of a ViT without a [CLS] token, for linear
classification: the mean patch token of each of several blocks,
concatenated.

DINO's linear evaluation (facebookresearch/dino ``eval_linear.py``, commit
7c446df) concatenates the [CLS] tokens of the last ``n_last_blocks`` blocks
(n = 4 for ViT-S), with ``--avgpool_patchtokens`` adding the mean patch
token of the last block. The SelfPatch backbone has no [CLS] token (its
image token comes from the aggregation module, trained on the last block
only), so each block contributes its mean patch token instead: DINO's
average-pooled feature, taken at every block DINO takes a [CLS] token from.
The width stays DINO's (4 x 384 = 1536 for ViT-S).
"""
from typing import Sequence, Tuple

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

__all__ = ['MultiBlockAvgPool']


@MODELS.register_module()
class MultiBlockAvgPool(BaseModule):
    """Average-pool each input map over its positions, then concatenate.

    Args:
        init_cfg (dict, optional): Unused (no weights).
    """

    def forward(self, inputs: Sequence[torch.Tensor]
                ) -> Tuple[torch.Tensor]:
        """Pool and concatenate.

        Args:
            inputs (Sequence[Tensor]): ``(B, C, H, W)`` maps (one per block)
                or ``(B, N, C)`` token sequences.

        Returns:
            tuple[Tensor]: One ``(B, sum C)`` tensor, in input order.
        """
        if not isinstance(inputs, (tuple, list)) or not inputs:
            raise TypeError('MultiBlockAvgPool expects a non-empty tuple of '
                            f'feature maps, got {type(inputs).__name__}.')
        pooled = [x.flatten(2).mean(-1) if x.dim() == 4 else x.mean(1)
                  for x in inputs]
        return (torch.cat(pooled, dim=1), )
