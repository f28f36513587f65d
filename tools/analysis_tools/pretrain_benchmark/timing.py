# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Synchronised wall-clock timers of the parts of a step, and the device's
dense matmul rate."""
import time
from collections import defaultdict
from typing import Dict

import torch

__all__ = ['PARTS', 'Breakdown', 'matmul_rate', 'sync']

PARTS = ('student backbone', 'teacher backbone', 'positive matching',
         'aggregation', 'heads', 'losses', 'backward', 'optimizer+EMA',
         'other')


def sync(device: str) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device == 'cuda':
        torch.cuda.synchronize()


class Breakdown:
    """Accumulates synchronised wall time of the parts of a step."""

    def __init__(self, model, optim_wrapper, device: str) -> None:
        self.model, self.ow, self.device = model, optim_wrapper, device
        self.totals: Dict[str, float] = defaultdict(float)
        self._handles, self._patched = [], []
        self._starts: Dict[int, float] = {}

    def _now(self) -> float:
        sync(self.device)
        return time.perf_counter()

    def _hook(self, module: torch.nn.Module, part: str) -> None:

        def pre(mod, args):
            self._starts[id(mod)] = self._now()

        def post(mod, args, out):
            self.totals[part] += self._now() - self._starts.pop(id(mod))

        self._handles += [module.register_forward_pre_hook(pre),
                          module.register_forward_hook(post)]

    def _wrap(self, obj, name: str, part: str) -> None:
        fn = getattr(obj, name)

        def timed(*args, **kwargs):
            t0 = self._now()
            out = fn(*args, **kwargs)
            self.totals[part] += self._now() - t0
            return out

        setattr(obj, name, timed)  # instance attribute shadows the method
        self._patched.append((obj, name))

    def __enter__(self) -> 'Breakdown':
        m = self.model
        self._hook(m.backbone, 'student backbone')
        self._hook(m.teacher.backbone, 'teacher backbone')
        for net in (m, m.teacher):
            neck = getattr(net, 'neck', None)  # DINOSelfSupervisor: none
            if neck is not None:
                self._hook(neck, 'neck')
                self._wrap(neck, 'positives', 'positive matching')
            for name in ('head', 'patch_head'):
                # the teacher has no entry for a part the model lacks
                head = getattr(net, name, None)
                if head is not None:
                    self._hook(head, 'heads')
                    if head.loss_module is not None:
                        self._hook(head.loss_module, 'losses')
        self._wrap(self.ow, 'backward', 'backward')
        self._wrap(self.ow, 'step', 'optimizer+EMA')
        self._wrap(self.ow, 'zero_grad', 'optimizer+EMA')
        self._wrap(m, 'update_teacher', 'optimizer+EMA')
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        for obj, name in self._patched:
            delattr(obj, name)

    def per_iter(self, total: float, iters: int) -> Dict[str, float]:
        """Seconds per iteration of every part of ``PARTS``."""
        t = {k: v / iters for k, v in self.totals.items()}
        t['aggregation'] = t.pop('neck', 0.0) - t.get('positive matching', 0)
        out = {p: t.get(p, 0.0) for p in PARTS[:-1]}
        out['other'] = total / iters - sum(out.values())
        return out


def matmul_rate(device: str, dtype: torch.dtype, n: int = 2048,
                seconds: float = 1.0) -> float:
    """Dense matmul FLOP/s of this device in ``dtype``, at up to ``n x n``.

    The size grows from 256 and stops early once one product takes an
    eighth of ``seconds``: a CPU without native bf16 (AVX2 only, measured on
    an AMD EPYC) falls back to a slow kernel that needs minutes for a 2048
    bf16 product.
    """
    size = min(256, n)
    while True:
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        a @ b
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        if size >= n or time.perf_counter() - t0 > seconds / 8:
            break
        size = min(2 * size, n)
    reps, t0 = 0, time.perf_counter()
    while True:
        a @ b
        reps += 1
        if reps % 4 == 0:
            sync(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
    return 2 * size**3 * reps / elapsed
