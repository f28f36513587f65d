# Copyright (c) selfpatch_mm contributors. All rights reserved.
import time
from typing import List, Optional, Sequence

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ...models.utils import compile_counts
from .utils import unwrap_model

__all__ = ['CompileHook']

DATA_BATCH = Optional[Sequence[dict]]


@HOOKS.register_module()
class CompileHook(Hook):
    """``torch.compile`` the student's and the EMA teacher's parts before
    training (``tools/train.py --compile`` adds it), and log what the
    compiler did.

    The parts are compiled in place by the algorithm's ``compile_parts``
    (``dynamic=False``: one graph per part, net and crop resolution, made at
    its first call), so checkpoints keep their keys and load into eager
    runs, and the EMA update, the optimizer, gradient accumulation, AMP and
    DDP work on the same parameters as without it.

    Logged: the wall time of the first iteration (nearly all of it is
    compiling) with the graphs it made, and after every epoch the graphs
    made in that epoch (none, after the first, when the shapes stay fixed).
    ``graphs_per_epoch`` keeps those counts.

    mmengine's own ``cfg.compile`` compiles the whole ``train_step`` (data
    preprocessing, the losses' checks, backward and optimizer step) and
    splits it at every one of those; this hook compiles only the parts that
    are pure tensor work.

    Args:
        parts (Sequence[str], optional): Parts to compile (``backbone``,
            ``neck``, ``head``, ``patch_head``); None: all of the model's.
        losses (bool): Also compile the loss modules. Defaults to False.
        **options: ``torch.compile`` arguments (``mode``, ``backend``,
            ``options``, ``fullgraph``); ``dynamic`` defaults to False.
    """

    priority = 'VERY_HIGH'  # the first iteration's timer wraps the others

    def __init__(self,
                 parts: Optional[Sequence[str]] = None,
                 losses: bool = False,
                 **options) -> None:
        self.parts = None if parts is None else list(parts)
        self.losses = losses
        self.options = options
        self.graphs_per_epoch: List[int] = []
        self._first_iter = True
        self._t0 = 0.0
        self._graphs_at = 0

    def before_train(self, runner) -> None:
        model = unwrap_model(runner)
        if not hasattr(model, 'compile_parts'):
            raise TypeError(
                'CompileHook compiles the parts of SelfPatch or '
                f'DINOSelfSupervisor; {type(model).__name__} has no '
                'compile_parts(). Remove CompileHook (or --compile) for this '
                'config.')
        names = model.compile_parts(self.parts, self.losses, **self.options)
        self._graphs_at = compile_counts()['graphs']
        runner.logger.info(
            f'CompileHook: torch.compile({self.options or ""}) of '
            f'{", ".join(names)}; the first iteration compiles them.')

    def before_train_epoch(self, runner) -> None:
        self._graphs_at = compile_counts()['graphs']

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        if self._first_iter:
            self._t0 = time.perf_counter()

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        if not self._first_iter:
            return
        self._first_iter = False
        seconds = time.perf_counter() - self._t0
        counts = compile_counts()
        runner.logger.info(
            f'CompileHook: the first iteration took {seconds:.1f} s, '
            f'compiling {counts["graphs"] - self._graphs_at} graphs '
            f'({counts["graph_breaks"]} graph breaks in this process).')
        runner.message_hub.update_info('compile_first_iter_sec', seconds)

    def after_train_epoch(self, runner) -> None:
        graphs = compile_counts()['graphs'] - self._graphs_at
        self.graphs_per_epoch.append(graphs)
        runner.logger.info(
            f'CompileHook: epoch {runner.epoch + 1} compiled {graphs} new '
            f'graphs (TORCH_LOGS=recompiles names the reasons).')
