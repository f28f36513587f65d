# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""What ``torch.compile`` costs and buys in a benchmark process."""
import statistics
import time
from typing import Callable

import torch
from torch import nn

from selfpatch_mm.models.utils import compile_counts
from .timing import sync

__all__ = ['compile_first_step', 'eager_vs_compiled']


def _one(step: Callable, model: nn.Module, optim_wrapper, data: dict,
         device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    step(model, optim_wrapper, data)
    sync(device)
    return time.perf_counter() - t0


def compile_first_step(step: Callable, model: nn.Module, optim_wrapper,
                       data: dict, device: str) -> dict:
    """Run the first step of a model with compiled parts, which compiles
    them, and say what it took.

    Returns:
        dict: ``compile_first_iter_sec`` (its wall time),
        ``compiled_graphs`` and ``graph_breaks`` (made during it).
    """
    before = compile_counts()
    sec = _one(step, model, optim_wrapper, data, device)
    after = compile_counts()
    return dict(compile_first_iter_sec=sec,
                compiled_graphs=after['graphs'] - before['graphs'],
                graph_breaks=after['graph_breaks'] - before['graph_breaks'])


def eager_vs_compiled(step: Callable, model: nn.Module, optim_wrapper,
                      data: dict, iters: int, device: str) -> dict:
    """Median step times of the same model compiled and eager
    (``torch.compiler.set_stance('force_eager')`` runs the compiled parts'
    original code), interleaved (compiled-eager, eager-compiled, ...) so
    that a shared machine's drift hits both alike.

    Returns:
        dict: ``interleaved_compiled_sec``, ``interleaved_eager_sec`` and
        ``compile_speedup`` (eager over compiled).
    """
    times = {True: [], False: []}
    for i in range(iters):
        for compiled in ((True, False) if i % 2 == 0 else (False, True)):
            stance = 'default' if compiled else 'force_eager'
            with torch.compiler.set_stance(stance):
                times[compiled].append(
                    _one(step, model, optim_wrapper, data, device))
    on, off = (statistics.median(times[k]) for k in (True, False))
    return dict(interleaved_compiled_sec=on, interleaved_eager_sec=off,
                compile_speedup=off / on)
