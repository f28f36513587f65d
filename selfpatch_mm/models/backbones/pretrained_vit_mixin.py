# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""How every ViT of this package loads pretrained weights: the one path
behind ``init_cfg=dict(type='Pretrained', ...)``.

mmengine's ``PretrainedInit`` knows neither the EMA teacher's prefix nor the
authors' layouts, and cannot fit a position table to another grid, so the
ViTs load the file themselves, through :mod:`selfpatch_mm.checkpoint`
(read as data only, any layout, shapes checked). Pretraining, the dense
backbones, the frozen probe and the analysis tools all come through here.
"""
import math
from typing import Any, Dict, List, Optional

import torch
from mmengine.logging import MMLogger

from ...checkpoint import (check_load_report, extract_vit_state_dict,
                           fit_pos_embed, is_vit_key, load_checkpoint_file,
                           match_state_dict)
from ..utils.init_cfg import is_pretrained_init

__all__ = ['PretrainedViTMixin']


class PretrainedViTMixin:
    """``init_weights`` that loads a ``Pretrained`` ``init_cfg`` with
    :meth:`load_pretrained`, and the official random init otherwise.

    The host class provides ``official_init()`` (its random initialisation
    after mmengine's), ``patch_resolution``, ``pos_embed``, ``cls_token``
    and optionally ``pos_embed_resize`` (``'dino'`` when absent).

    ``init_cfg`` keys: ``checkpoint`` (path or URL, ``.pth`` or
    ``.safetensors``), ``checkpoint_key`` (``'teacher'``, the default, or
    ``'student'``), ``prefix`` (any other key prefix), ``map_location`` and
    ``allow_partial``.
    """

    def init_weights(self) -> None:
        """Random init as the official code; then, for a ``Pretrained``
        ``init_cfg``, load its checkpoint over it (so layers the file has
        no weights for, such as a dense pyramid, keep the random init)."""
        init_cfg = self.init_cfg
        self.init_cfg = None if is_pretrained_init(init_cfg) else init_cfg
        try:
            super().init_weights()
            self.official_init()
        finally:
            self.init_cfg = init_cfg
        if is_pretrained_init(init_cfg):
            self.load_pretrained(
                init_cfg['checkpoint'],
                checkpoint_key=init_cfg.get('checkpoint_key', 'teacher'),
                prefix=init_cfg.get('prefix'),
                map_location=init_cfg.get('map_location', 'cpu'),
                allow_partial=init_cfg.get('allow_partial', False))

    def load_pretrained(self,
                        checkpoint: str,
                        checkpoint_key: str = 'teacher',
                        prefix: Optional[str] = None,
                        map_location: str = 'cpu',
                        allow_partial: bool = False) -> Dict[str, List[str]]:
        """Load the ViT weights of a checkpoint file, read once.

        The position table is fitted to this model's grid; a model with a
        [CLS] token takes the file's [CLS] position when the file has one
        (a standard DINO ViT) and keeps its own otherwise.

        Args:
            checkpoint (str): Local path or URL, read by
                :func:`selfpatch_mm.checkpoint.load_checkpoint_file`.
            checkpoint_key (str): ``'teacher'`` or ``'student'``.
            prefix (str, optional): Explicit key prefix (e.g.
                ``'backbone.'``) instead of ``checkpoint_key``.
            map_location (str): Device for loading.
            allow_partial (bool): Load whatever fits, even when most ViT
                keys are missing. Defaults to False.

        Returns:
            dict: ``missing`` and ``unexpected`` ViT keys.

        Raises:
            ValueError: If the file has no ViT weights, their shapes do not
                fit this arch, or most of them are missing.
        """
        logger = MMLogger.get_current_instance()
        name = type(self).__name__
        ckpt = load_checkpoint_file(checkpoint, map_location)
        state, source = extract_vit_state_dict(
            ckpt, checkpoint_key, prefix, filename=checkpoint,
            log=logger.warning)
        state = dict(state)
        if 'pos_embed' in state:
            state['pos_embed'] = self._fit_stored_pos_embed(
                state['pos_embed'], checkpoint)
        # The ViT's own tensors only: a dense pyramid has no pretrained
        # weights.
        own = {k: v for k, v in self.state_dict().items() if is_vit_key(k)}
        report = match_state_dict(own, state)
        # A shape mismatch means another arch: fail even if most keys fit.
        check_load_report(report, checkpoint, f'{name} backbone',
                          allow_partial=allow_partial, allow_mismatch=False)
        self.load_state_dict({k: state[k] for k in report.loaded},
                             strict=False)
        logger.info(f'{name}: loaded {len(report.loaded)}/{len(own)} ViT '
                    f'tensors from {checkpoint} ({source}).')
        if report.missing or report.unexpected or report.mismatched:
            logger.warning(f'{name}: partial load of {checkpoint}: '
                           f'{report.summary(examples=10)}')
        self.load_extra_weights(ckpt, checkpoint, checkpoint_key)
        missing = sorted(report.missing +
                         [m.split(':')[0] for m in report.mismatched])
        return dict(missing=missing, unexpected=report.unexpected)

    def load_extra_weights(self, ckpt: Any, checkpoint: str,
                           checkpoint_key: str) -> None:
        """Take weights beyond the ViT's from the same, already read
        file (a subclass's extra modules); nothing by default.

        Args:
            ckpt: The loaded file.
            checkpoint (str): Its name, for messages.
            checkpoint_key (str): ``'teacher'`` or ``'student'``.
        """

    def _fit_stored_pos_embed(self, stored: torch.Tensor,
                              checkpoint: str) -> torch.Tensor:
        """The file's position table on this model's grid, with this
        model's [CLS] position layout."""
        patch = fit_pos_embed(stored, tuple(self.patch_resolution),
                              checkpoint,
                              formula=getattr(self, 'pos_embed_resize',
                                              'dino'))
        if self.cls_token is None:
            return patch
        n = stored.shape[1]
        has_cls = n > 1 and math.isqrt(n - 1)**2 == n - 1
        cls_pos = stored[:, :1] if has_cls else \
            self.pos_embed.detach()[:, :1].to(patch)
        return torch.cat([cls_pos, patch], 1)
