# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Health figures of a DINO-style head, from tensors the step already has.

DINO (Caron et al., 2021, Sec. 5.3 and Fig. 7) explains collapse with two
terms that the cross-entropy hides, H(P_t) + KL(P_t | P_s): uniform collapse
drives the teacher's entropy to log K, single-prototype collapse drives it
(and the entropy of the batch-mean teacher distribution) to 0, and in both
the KL goes to 0. The per-dimension spread of the normalised features
catches the third failure, dimensional collapse (every image mapped to the
same direction), which the head's figures can miss.

Everything here is computed in fp32 with autocast off (the teacher
distribution's tails, down to 1e-30, underflow fp16, and a sum over 65536
prototypes needs fp32's precision), without gradients and without writing
to its inputs, so logging the figures leaves training's numerics as they
are.
"""
import math
from typing import Dict, Sequence

import torch
import torch.nn.functional as F

from .precision import autocast_off

__all__ = [
    'UNIFORM_ENTROPY_FRAC', 'ONE_PROTOTYPE_PERPLEXITY', 'entropy',
    'feature_std', 'head_figures'
]

#: ``entropy_frac`` above this is near uniform collapse (a flat teacher at
#: temperature 1.0 sat at 0.999, the demo's healthy heads at 0.31-0.77;
#: docs/health.md).
UNIFORM_ENTROPY_FRAC = 0.98
_CHUNK = 1 << 22  # values per temporary of entropy()
#: ``perplexity`` below this is near single-prototype collapse (every
#: target of the batch on one prototype gives 1; docs/health.md).
ONE_PROTOTYPE_PERPLEXITY = 1.5


@torch.no_grad()
def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Natural-log entropy of distributions over the last axis.

    Args:
        probs (Tensor): ``(..., K)`` probabilities, any float dtype.

    Returns:
        Tensor: ``(...)`` entropies in nats, fp32, without gradients;
        ``0 log 0`` counts as 0 (a one-hot distribution has entropy 0, not
        NaN).
    """
    with autocast_off(probs):
        rows = probs.float().reshape(-1, probs.shape[-1])
        # A copy of the patch targets is 1.4 GB at the paper's 128 images
        # per GPU: in chunks of 4M values, the figures add little to the
        # step's peak memory.
        chunk = max(1, _CHUNK // rows.shape[-1])
        out = torch.cat([_row_entropy(r) for r in rows.split(chunk)])
        return out.view(probs.shape[:-1])


def _row_entropy(p: torch.Tensor) -> torch.Tensor:
    """``-sum(p log p)`` of ``(R, K)`` fp32 rows."""
    # p * log(max(p, tiny)) is 0 where p is 0, as xlogy; in place on the
    # one copy it took a quarter of xlogy's time on the CPU.
    terms = p.clamp_min(torch.finfo(p.dtype).tiny)
    return -terms.log_().mul_(p).sum(-1)


@torch.no_grad()
def head_figures(teacher_probs: Sequence[torch.Tensor],
                 cross_entropy: torch.Tensor,
                 center: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The collapse figures of one head's loss call.

    Args:
        teacher_probs (Sequence[Tensor]): The loss's target distributions,
            one ``(V, ..., K)`` tensor per group of views (``(T, B, K)`` for
            the [CLS] loss, ``(V_g, B, N_g, K)`` per resolution for the
            patch loss).
        cross_entropy (Tensor): Scalar, the loss before its weight: the mean
            over views (every view counting once) of the batch-mean
            cross-entropy between teacher and student.
        center (Tensor): ``(1, K)`` centre the targets were computed with.

    Returns:
        dict[str, Tensor]: fp32 scalars:

        - ``entropy_frac``: the teacher's mean entropy over ``log K``; 1
          when every target is uniform, 0 when every target is one-hot.
        - ``perplexity``: ``exp`` of the entropy of the mean target over
          every position of the batch, the number of prototypes in use
          (1 when all targets pick the same prototype, K when the batch
          spreads evenly).
        - ``kl``: ``cross_entropy`` minus the mean entropy, weighted as the
          loss weights its views: the mean KL(teacher | student) of the
          loss's pairs (the cross-entropy of a pair is its teacher's entropy
          plus its KL), so no second softmax of the student is needed.
        - ``center_norm``: the L2 norm of ``center``.
    """
    num_prototypes = teacher_probs[0].shape[-1]
    # (V,) per group: each view's mean entropy, as the loss means each
    # view's cross-entropy, so that the difference is the pairs' KL.
    view_entropy = torch.cat(
        [entropy(q).flatten(1).mean(1) for q in teacher_probs])
    mean_entropy = view_entropy.mean()
    with autocast_off(center):
        total = sum(q.reshape(-1, num_prototypes).float().sum(0)
                    for q in teacher_probs)
        rows = sum(q.numel() // num_prototypes for q in teacher_probs)
        used = entropy(total / rows)
        return dict(
            entropy_frac=mean_entropy / math.log(num_prototypes),
            perplexity=used.exp(),
            kl=cross_entropy.detach().float() - mean_entropy,
            center_norm=center.detach().float().norm())


@torch.no_grad()
def feature_std(features: torch.Tensor) -> torch.Tensor:
    """Mean per-dimension standard deviation of L2-normalised features.

    Args:
        features (Tensor): ``(..., C)`` features; every leading position is
            one sample.

    Returns:
        Tensor: fp32 scalar; 0 when every sample has the same direction
        (dimensional collapse), about ``1 / sqrt(C)`` for directions spread
        evenly over the sphere. The population std (no Bessel correction),
        so a single sample gives 0 rather than NaN.
    """
    with autocast_off(features):
        flat = F.normalize(
            features.detach().float().reshape(-1, features.shape[-1]),
            dim=-1)
        # Two passes by hand: torch's std over dim 0 took 7x as long here.
        centred = flat - flat.mean(0)
        return centred.square().mean(0).sqrt().mean()
