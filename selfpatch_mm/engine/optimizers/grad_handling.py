# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The official DINO/SelfPatch gradient handling, shared by the wrappers."""
from typing import Iterable, List, Optional

import torch

__all__ = ['clip_grad_per_param_', 'SelfPatchGradMixin']


@torch.no_grad()
def clip_grad_per_param_(params: Iterable[torch.Tensor],
                         max_norm: float) -> torch.Tensor:
    """Scale each gradient whose own L2 norm exceeds ``max_norm``.

    This is the official ``utils.clip_gradients``: every parameter is clipped
    on its own (coefficient ``max_norm / (norm + 1e-6)``), unlike
    ``clip_grad_norm_``, which rescales all gradients by their global norm.

    Args:
        params (Iterable[Tensor]): Parameters with gradients.
        max_norm (float): Per-parameter norm limit.

    Returns:
        Tensor: The global norm of the gradients before clipping (logged as
        ``grad_norm``).
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.)
    norms = torch._foreach_norm(grads)
    coefs = [(max_norm / (n + 1e-6)).clamp_(max=1.0) for n in norms]
    torch._foreach_mul_(grads, coefs)
    return torch.linalg.vector_norm(torch.stack(norms))


class SelfPatchGradMixin:
    """Adds ``clip_grad=dict(type='per_param', max_norm=...)``,
    :meth:`set_frozen_params` and :attr:`accumulative_counts` to an mmengine
    optimizer wrapper."""

    def __init__(self, *args, clip_grad: Optional[dict] = None, **kwargs):
        per_param = clip_grad is not None and \
            clip_grad.get('type') == 'per_param'
        if per_param:
            clip_grad = dict(clip_grad, type='norm')
        super().__init__(*args, clip_grad=clip_grad, **kwargs)
        if per_param:
            self.clip_func = clip_grad_per_param_
        self._frozen: List[torch.nn.Parameter] = []

    @property
    def accumulative_counts(self) -> int:
        """Iterations whose gradients one optimizer step accumulates."""
        return self._accumulative_counts

    def set_frozen_params(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Drop the gradients of ``params`` before every step until called
        again (the official ``cancel_gradients_last_layer``)."""
        self._frozen = list(params)

    def drop_frozen_grads(self) -> None:
        """Set the frozen parameters' gradients to None.

        None (not zero) makes AdamW skip the parameters entirely, moments and
        weight decay included, as officially. Clipping is per parameter, so
        doing this before it changes nothing else.
        """
        for p in self._frozen:
            p.grad = None

    def step(self, **kwargs) -> None:
        self.drop_frozen_grads()
        super().step(**kwargs)
