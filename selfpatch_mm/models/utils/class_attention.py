# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""CaiT-style class-attention block used by the SelfPatch aggregation module.

Only the query token is updated; patch tokens are keys and values. The key
and value projections of the patches are exposed separately
(:meth:`ClassAttentionBlock.project_context`) so one projection serves both
the image-level token and every patch's neighbour summary.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['ClassAttentionBlock']


class ClassAttentionBlock(nn.Module):
    """Class attention + MLP, pre-norm, no layer scale (as the official
    ``LayerScale_Block_CA`` is used: its name notwithstanding it has none).

    Args:
        dim (int): Token width.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP hidden width ratio.
        eps (float): LayerNorm epsilon.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 mlp_ratio: float = 4.0,
                 eps: float = 1e-6) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim={dim} not divisible by heads={num_heads}')
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = nn.Module()
        self.attn.q = nn.Linear(dim, dim)
        self.attn.k = nn.Linear(dim, dim)
        self.attn.v = nn.Linear(dim, dim)
        self.attn.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module('fc1', nn.Linear(dim, hidden))
        self.mlp.add_module('act', nn.GELU())
        self.mlp.add_module('fc2', nn.Linear(hidden, dim))

    def project_context(self,
                        x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of context tokens ``(..., n, C)``."""
        y = self.norm1(x)
        return self.attn.k(y), self.attn.v(y)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        # (..., n, C) -> (..., heads, n, C / heads)
        return t.unflatten(-1, (self.num_heads, -1)).transpose(-3, -2)

    def forward(self,
                cls: torch.Tensor,
                k_ctx: torch.Tensor,
                v_ctx: torch.Tensor,
                mask: Optional[torch.Tensor] = None,
                return_attention: bool = False):
        """Update query tokens.

        Args:
            cls (Tensor): Query tokens ``(G, 1, C)``; ``G`` may be 1 and
                broadcast against the context batch.
            k_ctx (Tensor): Context keys ``(G', n, C)``.
            v_ctx (Tensor): Context values ``(G', n, C)``.
            mask (Tensor, optional): ``(G', n)`` bool, False for context
                tokens to ignore. The query token itself is always attended.
            return_attention (bool): Also return the attention weights
                ``(G', heads, 1, 1 + n)``.

        Returns:
            Tensor: Updated tokens ``(max(G, G'), 1, C)``.
        """
        G = max(cls.shape[0], k_ctx.shape[0])
        y = self.norm1(cls)
        q, k_cls, v_cls = self.attn.q(y), self.attn.k(y), self.attn.v(y)
        # Keys are [query token, context] as in the official cat((x_cls, x)).
        k = torch.cat([k_cls.expand(G, -1, -1), k_ctx.expand(G, -1, -1)], 1)
        v = torch.cat([v_cls.expand(G, -1, -1), v_ctx.expand(G, -1, -1)], 1)
        q, k, v = self._heads(q.expand(G, -1, -1)), self._heads(k), \
            self._heads(v)
        attn_mask = None
        if mask is not None:
            keep = torch.ones_like(mask[:, :1])
            attn_mask = torch.cat([keep, mask], 1)[:, None, None, :]
        if return_attention:
            logits = (q * q.shape[-1]**-0.5) @ k.transpose(-2, -1)
            if attn_mask is not None:
                logits = logits.masked_fill(~attn_mask, float('-inf'))
            attn = logits.softmax(-1)
            out = attn @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = self.attn.proj(out.transpose(-3, -2).flatten(-2))
        cls = cls + out
        cls = cls + self.mlp(self.norm2(cls))
        return (cls, attn) if return_attention else cls
