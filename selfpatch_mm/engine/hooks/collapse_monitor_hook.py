# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Warn (or stop) when a head collapses, while the run is still going.

DINO's users typically find a collapsed run days later, at evaluation
(facebookresearch/dino #43, #246, #279). The health figures that the
algorithms log with their losses (``health/<head>_entropy_frac`` and
``health/<head>_perplexity``, see ``selfpatch_mm.models.utils.health``) show
both collapses of DINO's analysis as they happen; this hook watches them.
The thresholds are measured, not guessed: see ``docs/health.md``.
"""
import math
from typing import Dict, Optional

import torch
from mmengine import dist
from mmengine.hooks import Hook, LoggerHook
from mmpretrain.registry import HOOKS

from ...models.utils.health import (ONE_PROTOTYPE_PERPLEXITY,
                                    UNIFORM_ENTROPY_FRAC)
from .safe_checkpoint_hook import SafeCheckpointHook
from .utils import unwrap_model

__all__ = ['CollapseMonitorHook']

#: Watched figure: (the collapse it signals, the side that is past).
_CHECKS = {'entropy_frac': ('uniform', '>'),
           'perplexity': ('single-prototype', '<')}
_HEADS = dict(cls=('head', 'image ([CLS])'), patch=('patch_head', 'patch'))


@HOOKS.register_module()
class CollapseMonitorHook(Hook):
    """Warn once per head when it stays near a collapse after a warm-up.

    Every ``interval`` iterations (the logger's, by default) the hook takes
    the interval's mean of each head's teacher entropy fraction and
    batch perplexity, averaged over the ranks (so every rank decides the
    same). A head counts as near **uniform collapse** when its entropy
    fraction is above ``max_entropy_frac``, near **single-prototype
    collapse** when its perplexity is below ``min_perplexity``. After
    ``patience`` such intervals in a row, past ``warmup_iters``, the hook
    logs a WARNING naming the head, the figure, its value and threshold,
    and the settings that usually fix it, with their current values. The
    counts are not checkpointed: a resumed run starts them (and its
    once-per-head warnings) afresh.

    Args:
        max_entropy_frac (float): Uniform-collapse threshold of
            ``health/<head>_entropy_frac`` (0.98).
        min_perplexity (float): Single-prototype threshold of
            ``health/<head>_perplexity`` (1.5 prototypes in use).
        patience (int): Consecutive intervals a head must stay past a
            threshold (3).
        warmup_iters (int): Iterations before the first check (100): the
            first steps of a run are not yet its regime.
        interval (int, optional): Iterations per check; None takes the
            ``LoggerHook``'s interval.
        stop (bool): Instead of warning, save a checkpoint, then raise on
            every rank (the run exits non-zero), as the non-finite-loss
            stop does.
    """

    priority = 'LOW'  # after the logger has printed the interval's figures

    def __init__(self,
                 max_entropy_frac: float = UNIFORM_ENTROPY_FRAC,
                 min_perplexity: float = ONE_PROTOTYPE_PERPLEXITY,
                 patience: int = 3,
                 warmup_iters: int = 100,
                 interval: Optional[int] = None,
                 stop: bool = False) -> None:
        if patience < 1:
            raise ValueError(f'patience must be >= 1, got {patience}')
        self.thresholds = dict(
            entropy_frac=max_entropy_frac, perplexity=min_perplexity)
        self.patience = patience
        self.warmup_iters = warmup_iters
        self.interval = interval
        self.stop = stop
        self.streaks: Dict[str, int] = {}
        self.warned = set()

    def before_train(self, runner) -> None:
        if self.interval is None:
            loggers = [h for h in runner.hooks if isinstance(h, LoggerHook)]
            self.interval = loggers[0].interval if loggers else 50

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if (runner.iter + 1 <= self.warmup_iters
                or not self.every_n_train_iters(runner, self.interval)):
            return
        means = self._interval_means(runner)
        for (head, figure), value in means.items():
            key = f'{head}/{figure}'
            self.streaks[key] = self.streaks.get(key, 0) + 1 \
                if self._past(figure, value) else 0
            if self.streaks[key] >= self.patience and head not in self.warned:
                self.warned.add(head)
                self._report(runner, head, figure, value, batch_idx)

    def _past(self, figure: str, value: float) -> bool:
        """Whether ``value`` is past the figure's threshold; a non-finite
        mean is not (the finite-loss check stops such a run)."""
        limit = self.thresholds[figure]
        if not math.isfinite(value):
            return False
        return value > limit if _CHECKS[figure][1] == '>' else value < limit

    def _interval_means(self, runner) -> Dict[tuple, float]:
        """``(head, figure)``: the interval's mean over every rank."""
        hub = runner.message_hub
        keys = [(head, figure) for head in _HEADS for figure in _CHECKS
                if f'train/health/{head}_{figure}' in hub.log_scalars]
        if not keys:
            return {}
        values = torch.tensor([
            float(hub.get_scalar(f'train/health/{h}_{f}').mean(
                self.interval)) for h, f in keys
        ], dtype=torch.float64)
        # Every rank must take the same decision (a stop is collective).
        dist.all_reduce(values, op='mean')
        return dict(zip(keys, values.tolist()))

    def _report(self, runner, head: str, figure: str, value: float,
                batch_idx: int) -> None:
        """Log the warning, or save a checkpoint and raise with it."""
        kind, side = _CHECKS[figure]
        limit = self.thresholds[figure]
        span = self.patience * self.interval
        message = (
            f'CollapseMonitorHook: the {_HEADS[head][1]} head is near '
            f'{kind} collapse: health/{head}_{figure} = {value:.4g} {side} '
            f'{limit:g} for {self.patience} logging intervals in a row '
            f'(the last {span} iterations, up to iteration '
            f'{runner.iter + 1}). {self._knobs(runner, head, kind)} See '
            'docs/health.md for measured effects.')
        if not self.stop:
            runner.logger.warning(message)
            return
        path = _save_before_stop(runner, batch_idx)
        raise RuntimeError(f'{message} Stopped (stop=True); the state of '
                           f'iteration {runner.iter + 1} is saved in {path}.')

    @staticmethod
    def _knobs(runner, head: str, kind: str) -> str:
        """The settings that usually fix ``kind`` collapse, with their
        values in this run."""
        loss = getattr(unwrap_model(runner), _HEADS[head][0]).loss_module
        lr = runner.optim_wrapper.get_lr()['lr'][0]
        batch = getattr(runner.train_dataloader, 'batch_size', None)
        # DINO, Sec. 5.3: centring pushes towards uniform, sharpening (a
        # lower temperature) towards one prototype; without centring
        # (momentum 1) the demo's perplexity fell (docs/health.md).
        temp, centre = (('lower it (DINO: 0.04-0.07)', '') if kind == 'uniform'
                        else ('raise it a little',
                              ': lower it, a faster centre'))
        return (f'Settings that usually fix it: the teacher temperature '
                f'(teacher_temp = {loss.teacher_temp:g}: {temp}), the centre '
                f'momentum (center_momentum = {loss.center_momentum:g}'
                f'{centre}), the head width (out_channels = '
                f'{loss.center.shape[-1]}), the batch size (per process '
                f'{batch}) and the learning rate (lr = {lr:.3g}).')


def _save_before_stop(runner, batch_idx: int) -> str:
    """Write the current state to ``latest.pth`` through the checkpoint
    hook (atomic, with its position in the epoch, so ``--resume`` continues
    from this iteration after the fix); every rank waits for it.

    Returns:
        str: The checkpoint's path.
    """
    ckpt_hook = next(
        (h for h in runner.hooks if isinstance(h, SafeCheckpointHook)), None)
    if ckpt_hook is None:
        raise RuntimeError(
            'CollapseMonitorHook(stop=True) saves through SafeCheckpointHook; '
            "set default_hooks.checkpoint.type='SafeCheckpointHook'.")
    path = ckpt_hook.save_latest(runner, batch_idx)
    dist.barrier()  # no rank exits while rank 0 still writes
    return path
