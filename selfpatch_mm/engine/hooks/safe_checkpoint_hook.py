# Copyright (c) selfpatch_mm contributors. All rights reserved.
import os
import os.path as osp
from typing import Optional

from mmengine.dist import (all_gather_object, broadcast_object_list, get_rank,
                           is_main_process)
from mmengine.hooks import CheckpointHook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from ...checkpoint.checkpoint_files import (
    atomic_write_text, check_checkpoint_file, fsync_dir, fsync_file,
    refuse_nonfinite, relative_to, remove_tmp_checkpoints, tmp_path_for,
    write_error)
from ...checkpoint.checkpoint_files import \
    find_resumable_checkpoint as _find_resumable
from ...utils.rng_state import get_rng_state, set_rng_state
from ..runners.train_position import make_position
from .atomic_best_mixin import AtomicBestMixin
from .utils import quiet_log, unwrap_model

# mmengine 0.10.7's CheckpointHook.before_train and Runner.save_checkpoint
# build a FileClient they never use without file_client_args (their own
# comments say so), and log these deprecation WARNINGs no user can act on.
_UNUSED_FILE_CLIENT = ('"FileClient" will be deprecated',
                       '"HardDiskBackend" is the alias of "LocalBackend"')

__all__ = ['SafeCheckpointHook']


@HOOKS.register_module()
class SafeCheckpointHook(AtomicBestMixin, CheckpointHook):
    """mmengine's ``CheckpointHook`` with crash-consistent files and exact
    resume.

    * **Atomic writes.** A checkpoint is saved to a hidden temporary file in
      the same folder, fsynced, re-read and checked, then renamed to its
      final name; the folder is fsynced. ``last_checkpoint`` is written the
      same way and holds a path relative to the work dir, so a moved work
      dir resumes from itself. A killed run leaves at worst a temporary
      file, which the next run deletes.
    * **Rotation after verification.** ``max_keep_ckpts`` deletes old files
      only once the new one is renamed into place and read back.
    * **No bad states.** A model state with NaN or Inf is not saved: the
      hook raises, so ``last_checkpoint`` keeps naming a finite checkpoint.
    * **Errors.** A failed write (e.g. ``ENOSPC``, a full disk) removes the
      temporary file and raises an ``OSError`` naming the checkpoint; the
      previous checkpoint is untouched.
    * **Resume.** With ``resume=True`` and no ``load_from`` (``--resume``
      without a path) the newest *readable* checkpoint is chosen; a cut
      short, empty or foreign newest file is skipped with a warning naming
      it.
    * **RNG.** Every rank's torch (CPU, CUDA), numpy and python generator
      states go into ``checkpoint['rng_state']`` and come back on resume,
      so drop-path and the data pipeline draw what an uninterrupted run
      draws (see :mod:`selfpatch_mm.utils.rng_state`).

    Only local folders get these guarantees; other backends (``s3://``,
    ...) fall back to mmengine's behaviour. ``save_best`` files are
    written the same way, and the previous best is removed only once the
    new one is in place (mmengine removes it first).

    * **A rolling latest file.** With ``save_latest=True``, every epoch
      whose numbered checkpoint is not due writes ``latest.pth`` (replaced
      each time, atomically), so a lost job loses at most an epoch while
      ``interval`` and ``max_keep_ckpts`` keep the numbered history as
      before. :meth:`save_latest` writes it at any iteration boundary
      (``PreemptionHook`` calls it on a signal or a timer); such a file
      carries its position in the epoch, and a resume continues there
      (:class:`~selfpatch_mm.engine.runners.ResumableEpochBasedTrainLoop`).

    Args:
        verify (bool): Re-read each new checkpoint before it replaces the
            old ones. Defaults to True.
        save_latest (bool): Write ``latest.pth`` at the end of every epoch
            that writes no numbered checkpoint. Defaults to False.
        **kwargs: :class:`mmengine.hooks.CheckpointHook` arguments.
    """

    LATEST = 'latest.pth'

    def __init__(self,
                 *args,
                 verify: bool = True,
                 save_latest: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.verify = verify
        self.save_latest_every_epoch = save_latest
        #: Iterations done when the newest checkpoint of this run was
        #: written (or resumed from); None before either.
        self.last_saved_iter: Optional[int] = None
        self._resumed_rng: Optional[list] = None
        self._rank_rng: Optional[list] = None

    # ------------------------------------------------------------- helpers
    def _is_local(self, runner) -> bool:
        from mmengine.fileio.backends import LocalBackend
        backend = getattr(self, 'file_backend', None)
        if backend is not None:
            return isinstance(backend, LocalBackend)
        out_dir = self.out_dir or runner.work_dir
        return '://' not in str(out_dir) and self.file_client_args is None \
            and self.backend_args is None

    def _ckpt_dir(self, runner) -> str:
        """Where checkpoints go (``before_train`` sets ``out_dir`` so)."""
        if self.out_dir is None or self.out_dir == runner.work_dir:
            return runner.work_dir
        if getattr(self, 'file_backend', None) is not None:
            return self.out_dir  # already joined by before_train
        return osp.join(self.out_dir,
                        osp.basename(runner.work_dir.rstrip(osp.sep)))

    # --------------------------------------------------------------- hooks
    def before_run(self, runner) -> None:
        """Choose the checkpoint to auto-resume from (before mmengine's
        ``load_or_resume`` reads ``last_checkpoint`` on its own)."""
        # mmengine keeps the resume settings in private attributes and reads
        # them only in ``load_or_resume``, which runs after ``before_run``.
        if not (getattr(runner, '_resume', False)
                and getattr(runner, '_load_from', None) is None):
            return
        if not self._is_local(runner):
            return
        folders = [self._ckpt_dir(runner)]
        # Rank 0 reads the candidates (a full load each), every rank resumes
        # from its answer.
        found = [None]
        if is_main_process():
            found[0] = _find_resumable(
                runner.work_dir,
                extra_dirs=[f for f in folders if f != runner.work_dir],
                filename_tmpls=(self.filename_tmpl, 'epoch_{}.pth',
                                'iter_{}.pth'),
                logger=runner.logger)
        broadcast_object_list(found, src=0)
        path = found[0]
        if path is None:
            runner.logger.info(
                f'No checkpoint to resume from in {folders}; training starts '
                'from scratch.')
            runner._resume = False
        else:
            runner._load_from = path

    def _quiet_file_client(self, runner):
        """Drop the unused FileClient's deprecation WARNINGs (only when
        ``file_client_args`` is unset: a FileClient the user asked for
        keeps them)."""
        return quiet_log(runner.logger, _UNUSED_FILE_CLIENT if
                         self.file_client_args is None else ())

    def before_train(self, runner) -> None:
        """Set up as mmengine does, delete temporary files a killed run
        left, and restore the generators of a resumed checkpoint."""
        with self._quiet_file_client(runner):
            super().before_train(runner)
        if is_main_process() and self._is_local(runner):
            for path in remove_tmp_checkpoints(self.out_dir):
                runner.logger.warning(
                    f'Removed {path}, a checkpoint a stopped run did not '
                    'finish writing.')
        # Last of the before_train hooks (priority VERY_LOW), so the
        # generators continue exactly where the saved run left them.
        if self._resumed_rng is not None:
            states, self._resumed_rng = self._resumed_rng, None
            rank = get_rank()
            if len(states) != runner.world_size:
                runner.logger.warning(
                    f'The checkpoint holds the RNG states of {len(states)} '
                    f'processes, this run has {runner.world_size}: using '
                    f'state {rank % len(states)}; the run will not repeat '
                    'the saved one draw for draw.')
            set_rng_state(states[rank % len(states)])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the saved generator states for :meth:`before_train`."""
        # Only a resumed run continues the saved generators; ``load_from``
        # (fine-tuning) starts its own.
        if not getattr(runner, '_resume', False):
            return
        if 'rng_state' in checkpoint:
            self._resumed_rng = checkpoint['rng_state']
        meta = checkpoint.get('meta', {})
        self.last_saved_iter = meta.get('iter')
        position = meta.get('train_position')
        loop = runner.train_loop
        if hasattr(loop, 'set_resume_position'):
            loop.set_resume_position(position)
        elif position is not None:
            raise RuntimeError(
                f'The checkpoint was written in the middle of epoch '
                f'{position["epoch"] + 1} (after batch {position["batches"]} '
                f'of {position["batches_per_epoch"]}), but the train loop '
                f'{type(loop).__name__} restarts epochs and would train '
                "those batches again. Set train_cfg.type="
                "'ResumableEpochBasedTrainLoop', or resume from an epoch "
                'checkpoint (epoch_N.pth).')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse a non-finite state; add the generator states."""
        # mmengine calls this on rank 0 only (``Runner.save_checkpoint`` is
        # master-only), so nothing collective may happen here.
        meta = checkpoint.get('meta', {})
        refuse_nonfinite(
            checkpoint.get('state_dict', {}), meta.get('epoch'),
            meta.get('iter'))
        states, self._rank_rng = self._rank_rng, None
        checkpoint['rng_state'] = states or [get_rng_state()]

    # ---------------------------------------------------------------- save
    def _save_checkpoint_with_step(self, runner, step: int,
                                   meta: dict) -> None:
        """Save ``epoch_{step}.pth`` (or the template's name) atomically,
        then point ``last_checkpoint`` at it, then rotate.

        Raises:
            RuntimeError: If the model state is not finite, or the new file
                does not read back.
            OSError: If writing fails (e.g. a full disk); nothing changed.
        """
        if not self._is_local(runner):
            return super()._save_checkpoint_with_step(runner, step, meta)
        final = osp.join(self.out_dir, self.filename_tmpl.format(step))
        hub = runner.message_hub
        old_ids = list(self.keep_ckpt_ids) if self.max_keep_ckpts > 0 else []
        old_last = hub.get_info('last_ckpt')
        to_delete = []
        if self.max_keep_ckpts > 0 and not (old_ids and old_ids[-1] == step):
            # Book-keeping first, as mmengine does: the saved message hub
            # must list the new file. The files themselves go only after it.
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                to_delete.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        hub.update_info('last_ckpt', final)
        self._commit(runner, final, meta, old_ids, old_last)
        if not is_main_process():
            return
        for old_step in to_delete:
            path = osp.join(self.out_dir, self.filename_tmpl.format(old_step))
            if osp.isfile(path) and osp.abspath(path) != osp.abspath(final):
                os.remove(path)
        if to_delete:
            fsync_dir(self.out_dir)

    def _commit(self, runner, final: str, meta: dict, old_ids: list,
                old_last: Optional[str]) -> None:
        """Check the state, write ``final`` atomically and point
        ``last_checkpoint`` at it (collective: every rank calls it). On a
        failure the book-keeping goes back to ``old_ids``/``old_last``."""
        try:
            # On every rank, so all ranks stop together on a bad state and
            # every rank's generators (they differ with diff_rank_seed=True)
            # reach rank 0, which writes them.
            refuse_nonfinite(
                unwrap_model(runner).state_dict(), meta.get('epoch'),
                meta.get('iter'))
            self._rank_rng = all_gather_object(get_rng_state())
            self._write(runner, final, meta=meta,
                        save_optimizer=self.save_optimizer,
                        save_param_scheduler=self.save_param_scheduler,
                        by_epoch=self.by_epoch, **self.args)
        except BaseException as e:
            self._undo(runner, old_ids, old_last)
            if isinstance(e, OSError):
                raise write_error(e, final, old_last) from e
            raise
        self.last_ckpt = final
        self.last_saved_iter = meta.get('iter')
        if is_main_process():
            atomic_write_text(
                osp.join(runner.work_dir, 'last_checkpoint'),
                relative_to(final, runner.work_dir))

    def after_train_epoch(self, runner) -> None:
        """mmengine's numbered checkpoints; ``latest.pth`` in the epochs
        between them when ``save_latest``."""
        numbered_due = self.by_epoch and (
            self.every_n_epochs(runner, self.interval, self.save_begin) or
            (self.save_last and self.is_last_train_epoch(runner)))
        super().after_train_epoch(runner)
        if self.save_latest_every_epoch and self.by_epoch and \
                not numbered_due:
            self.save_latest(runner, epoch_end=True)

    def save_latest(self,
                    runner,
                    batch_idx: Optional[int] = None,
                    epoch_end: bool = False) -> str:
        """Write ``latest.pth`` now, atomically; every rank must call it.

        Args:
            runner (Runner): The training runner.
            batch_idx (int, optional): In ``after_train_iter``: the batch
                just trained; the file then records its position in the
                epoch (``meta['train_position']``), and a resume continues
                with the next batch. None at the end of an epoch
                (``after_train_epoch``: the epoch counts as done) or between
                epochs (``before_train_epoch``).

        Returns:
            str: The path written.

        Raises:
            RuntimeError: If the model state is not finite, or the file does
                not read back.
            OSError: If writing fails (e.g. a full disk); the previous files
                are untouched.
        """
        if batch_idx is not None and not isinstance(runner.train_loop,
                                                    EpochBasedTrainLoop):
            # an iteration-based loop resumes at meta['iter'] by itself
            meta = dict(epoch=runner.epoch, iter=runner.iter + 1)
        elif batch_idx is not None:
            meta = dict(epoch=runner.epoch, iter=runner.iter + 1,
                        train_position=make_position(runner, batch_idx + 1))
        else:
            meta = dict(epoch=runner.epoch + int(epoch_end),
                        iter=runner.iter)
        final = osp.join(self.out_dir, self.LATEST)
        hub = runner.message_hub
        old_last = hub.get_info('last_ckpt')
        hub.update_info('last_ckpt', final)
        self._commit(runner, final, meta,
                     list(self.keep_ckpt_ids) if self.max_keep_ckpts > 0
                     else [], old_last)
        return final

    def _write(self, runner, final: str, **kwargs) -> None:
        """``runner.save_checkpoint`` into a temporary file next to
        ``final``, fsynced and read back, then renamed to ``final``; a
        failure leaves no temporary file."""
        tmp = tmp_path_for(final)
        try:
            with self._quiet_file_client(runner):
                runner.save_checkpoint(self.out_dir, osp.basename(tmp),
                                       self.file_client_args,
                                       backend_args=self.backend_args,
                                       **kwargs)
            if is_main_process():
                fsync_file(tmp)
                if self.verify:
                    reason = check_checkpoint_file(tmp)
                    if reason is not None:
                        raise RuntimeError(
                            f'The checkpoint just written for {final} does '
                            f'not read back: {reason}.')
                os.replace(tmp, final)
                fsync_dir(self.out_dir)
        except BaseException:
            if is_main_process() and osp.exists(tmp):
                os.remove(tmp)
            raise

    def _undo(self, runner, old_ids: list,
              old_last: Optional[str]) -> None:
        """Forget a save that failed: no rotation."""
        self._rank_rng = None
        if self.max_keep_ckpts > 0:
            self.keep_ckpt_ids.clear()
            self.keep_ckpt_ids.extend(old_ids)
            runner.message_hub.update_info('keep_ckpt_ids', old_ids)
        runner.message_hub.update_info('last_ckpt', old_last)
