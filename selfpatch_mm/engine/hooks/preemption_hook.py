# Copyright (c) selfpatch_mm contributors. All rights reserved.
import signal
import threading
import time
from typing import Optional, Sequence, Union

import torch
from mmengine.dist import all_reduce, barrier
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

__all__ = ['PreemptionHook', 'TrainingPreempted', 'PREEMPTED_EXIT_CODE']

#: The exit status of a run stopped by a signal after saving: sysexits.h's
#: EX_TEMPFAIL ("try again later"), which a requeue script can test for.
PREEMPTED_EXIT_CODE = 75


class TrainingPreempted(SystemExit):
    """Raised on every rank once the preemption checkpoint is written; the
    process exits with :data:`PREEMPTED_EXIT_CODE` and no traceback."""


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Stop at the next iteration boundary on a signal, with a checkpoint.

    Clusters preempt or time-limit long jobs with a signal (Slurm: SIGTERM,
    or the ``--signal`` of the user's choice) and kill them soon after. The
    handler installed here only sets a flag; after every iteration all
    ranks combine their flags in one tiny all-reduce, so a signal that
    reached any rank stops all of them at the same iteration. They write
    ``latest.pth`` through ``SafeCheckpointHook.save_latest`` (atomically:
    model, EMA teacher, both centres, optimizer and loss scaler, schedulers,
    message hub, every rank's generators and the position in the epoch) and
    exit with :data:`PREEMPTED_EXIT_CODE`. ``--resume`` continues with the
    next batch (``ResumableEpochBasedTrainLoop``).

    * A signal before the first iteration, or during validation or the
      epoch-end checkpoint, is acted on at the next epoch start: nothing is
      saved when the newest checkpoint already holds the current state.
    * More signals during the save are counted and ignored; the write
      completes, and a kill during it leaves the previous file intact.
    * A rank that never reaches the boundary (frozen, dead) makes the others
      fail in the all-reduce after ``env_cfg.dist_cfg.timeout``.
    * ``save_every_minutes`` also writes ``latest.pth`` when that long has
      passed on rank 0 since the last save, so a long epoch is covered.

    Args:
        signals (Sequence[str | int]): Signals that stop the run. Defaults
            to ``('SIGTERM', 'SIGUSR1')``.
        save_every_minutes (float, optional): Time-based ``latest.pth``.
            Defaults to None (off).
        exit_code (int): Exit status after the save. Defaults to 75.
    """

    priority = 'LOWEST'  # after the teacher update, schedulers and logging

    def __init__(self,
                 signals: Sequence[Union[str, int]] = ('SIGTERM', 'SIGUSR1'),
                 save_every_minutes: Optional[float] = None,
                 exit_code: int = PREEMPTED_EXIT_CODE) -> None:
        self.signals = [self._signal(s) for s in signals]
        if save_every_minutes is not None and not save_every_minutes > 0:
            raise ValueError('PreemptionHook: save_every_minutes must be a '
                             f'positive number, got {save_every_minutes!r}.')
        self.save_every_minutes = save_every_minutes
        self.exit_code = int(exit_code)
        self.received: list = []
        self._last_save = time.monotonic()
        self._previous_handlers: dict = {}

    @staticmethod
    def _signal(sig: Union[str, int]) -> signal.Signals:
        try:
            return signal.Signals[sig] if isinstance(sig, str) else \
                signal.Signals(sig)
        except (KeyError, ValueError):
            raise ValueError(
                f'PreemptionHook: unknown signal {sig!r}; use a name such as '
                "'SIGTERM' or 'SIGUSR1'.") from None

    def _handle(self, signum: int, frame) -> None:
        # Only a flag: the main thread may be anywhere (inside a collective,
        # holding the logging lock), so nothing else happens here.
        self.received.append(signal.Signals(signum).name)

    def before_run(self, runner) -> None:
        """Install the handlers (before the DataLoader workers fork, so
        workers inherit them and ignore the cluster's signal too)."""
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning(
                'PreemptionHook: not in the main thread; signals cannot be '
                'handled and stop the run without a checkpoint.')
            return
        for sig in self.signals:
            self._previous_handlers[sig] = signal.signal(sig, self._handle)

    def after_run(self, runner) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._previous_handlers.clear()

    def _agree(self, runner) -> tuple:
        """(stop, save) as every rank sees it: one all-reduce."""
        due = (self.save_every_minutes is not None and runner.rank == 0
               and time.monotonic() - self._last_save >=
               60 * self.save_every_minutes)
        flags = torch.tensor([float(bool(self.received)), float(due)])
        all_reduce(flags, op='max')
        return bool(flags[0]), bool(flags[1])

    def _checkpoint_hook(self, runner):
        for hook in runner.hooks:
            if hasattr(hook, 'save_latest'):
                return hook
        raise RuntimeError(
            'PreemptionHook needs a checkpoint hook with save_latest() '
            "(default_hooks.checkpoint type='SafeCheckpointHook').")

    def _stop(self, runner, path: Optional[str], done: int) -> None:
        names = ', '.join(sorted(set(self.received))) or 'a signal on ' \
            'another rank'
        saved = (f'saved the state after iteration {done} to {path}'
                 if path else 'the newest checkpoint already holds this '
                 'state, nothing new to save')
        # Rank 0 writes the file: a launcher (torchrun) that sees another
        # rank exit first would stop it mid-write.
        barrier()
        runner.logger.warning(
            f'Stopping on {names}: {saved}. Exit code {self.exit_code}; '
            'continue with `python tools/train.py CONFIG --resume` (the same '
            'work dir).')
        raise TrainingPreempted(self.exit_code)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        stop, due = self._agree(runner)
        if not (stop or due):
            return
        path = self._checkpoint_hook(runner).save_latest(runner, batch_idx)
        self._last_save = time.monotonic()
        if stop:
            self._stop(runner, path, runner.iter + 1)
        runner.logger.info(f'Saved {path} (every '
                           f'{self.save_every_minutes:g} minutes).')

    def before_train_epoch(self, runner) -> None:
        stop, _ = self._agree(runner)
        if not stop:
            return
        ckpt = self._checkpoint_hook(runner)
        path = None
        if runner.iter > 0 and ckpt.last_saved_iter != runner.iter:
            path = ckpt.save_latest(runner)
        self._stop(runner, path, runner.iter)
