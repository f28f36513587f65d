# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""``save_best`` of :class:`SafeCheckpointHook`, written atomically."""
import os
import os.path as osp

from mmengine.dist import is_main_process

from ...checkpoint.checkpoint_files import fsync_dir, write_error

__all__ = ['AtomicBestMixin']


class AtomicBestMixin:
    """mmengine's ``_save_best_checkpoint`` for a ``CheckpointHook`` that
    has SafeCheckpointHook's ``_is_local``, ``_write`` and
    ``_save_checkpoint_with_step``: the new best file is written atomically
    *before* the previous one is removed (mmengine removes it first, so a
    kill or a full disk during the write lost the best model)."""

    def _save_best_checkpoint(self, runner, metrics: dict) -> None:
        """mmengine's ``save_best``, but the new best file is written
        atomically *before* the previous one is removed.

        mmengine removes the previous best file first, so a kill or a full
        disk during the write lost the best model of the run.
        """
        if not (self.save_best and self._is_local(runner)):
            return super()._save_best_checkpoint(runner, metrics)
        step = runner.epoch if self.by_epoch else runner.iter
        meta = dict(epoch=runner.epoch, iter=runner.iter)
        if 'auto' in self.key_indicators:
            self._init_rule(self.rules, [list(metrics.keys())[0]])
        hub, single = runner.message_hub, len(self.key_indicators) == 1
        updated = False
        for key, rule in zip(self.key_indicators, self.rules):
            score_key = 'best_score' if single else f'best_score_{key}'
            path_key = 'best_ckpt' if single else f'best_ckpt_{key}'
            best = (hub.get_info(score_key)
                    if score_key in hub.runtime_info else
                    self.init_value_map[rule])
            score = metrics[key]
            if score is None or not self.is_better_than[key](score, best):
                continue
            old = (self.best_ckpt_path
                   if single else self.best_ckpt_path_dict.get(key))
            name = f'best_{key}_{self.filename_tmpl.format(step)}'
            final = osp.join(self.out_dir, name.replace('/', '_'))
            # the saved message hub names the new file, as mmengine's does
            hub.update_info(score_key, score)
            hub.update_info(path_key, final)
            try:
                self._write(runner, final, save_optimizer=False,
                            save_param_scheduler=False, meta=meta,
                            by_epoch=False)
            except BaseException as e:
                hub.update_info(score_key, best)
                hub.update_info(path_key, old)
                if isinstance(e, OSError):
                    raise write_error(e, final, old) from e
                raise
            updated = True
            if single:
                self.best_ckpt_path = final
            else:
                self.best_ckpt_path_dict[key] = final
            if (is_main_process() and old and osp.isfile(old)
                    and osp.abspath(old) != osp.abspath(final)):
                os.remove(old)
                fsync_dir(self.out_dir)
                runner.logger.info(
                    f'The previous best checkpoint {old} is removed')
            runner.logger.info(
                f'The best checkpoint with {score:0.4f} {key} at {step} '
                f'{"epoch" if self.by_epoch else "iter"} is saved to '
                f'{osp.basename(final)}.')
        # as mmengine: the last checkpoint must name the new best file
        if updated and self.last_ckpt is not None:
            self._save_checkpoint_with_step(runner, step, meta)
