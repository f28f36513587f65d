# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Mixed precision, fp16 with a GradScaler or bf16 without, on any device.

mmengine's ``AmpOptimWrapper`` is not reused: it asserts a GPU (so it cannot
be tested, nor used for bf16, on the CPU), its ``autocast`` allows only bf16
on the CPU, and it builds a GradScaler for bf16 too.
"""
from contextlib import contextmanager
from typing import Union

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

from .grad_handling import SelfPatchGradMixin

__all__ = ['SelfPatchAmpOptimWrapper']

DTYPES = {'float16': torch.float16, 'fp16': torch.float16,
          'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16}


@OPTIM_WRAPPERS.register_module()
class SelfPatchAmpOptimWrapper(SelfPatchGradMixin, OptimWrapper):
    """:class:`SelfPatchOptimWrapper` under ``torch.autocast``.

    * ``dtype='float16'`` (the official recipe, V100/A100/H100): a dynamic
      ``GradScaler``. Gradients are unscaled before the per-parameter
      clipping. A step that the scaler skips because of inf/NaN gradients is
      logged (``train/amp_skipped_steps``) and training goes on, as is normal
      under fp16.
    * ``dtype='bfloat16'`` (A100/H100, and CPUs): no scaler; bf16 has fp32's
      exponent range.

    Losses, centres, softmaxes and matching similarities run in fp32 inside
    autocast (see :func:`selfpatch_mm.models.utils.autocast_off`); the
    parameters, the EMA teacher and the optimizer state stay fp32.

    Args:
        optimizer (torch.optim.Optimizer): The optimizer.
        dtype (str | torch.dtype): ``'float16'``/``'fp16'`` or
            ``'bfloat16'``/``'bf16'``.
        loss_scale (str | float | dict): fp16 only. ``'dynamic'``, a static
            scale, or ``GradScaler`` keyword arguments.
        **kwargs: ``accumulative_counts``, ``clip_grad``.
    """

    def __init__(self,
                 optimizer: torch.optim.Optimizer,
                 dtype: Union[str, torch.dtype] = 'float16',
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 **kwargs) -> None:
        super().__init__(optimizer=optimizer, **kwargs)
        name = str(dtype).replace('torch.', '')
        if name not in DTYPES:
            raise ValueError(f'optim_wrapper.dtype={dtype!r} is not a mixed-'
                             f'precision dtype; use one of {list(DTYPES)}.')
        self.cast_dtype = DTYPES[name]
        # Autocast and the scaler follow the parameters' device (the Runner
        # moves the model before it builds the optimizer wrapper).
        params = [p for g in optimizer.param_groups for p in g['params']]
        self.device_type = params[0].device.type if params else 'cpu'
        self.loss_scaler = None
        self._scale_update_param = None
        self.skipped_steps = 0
        if self.cast_dtype is torch.float16:
            self.loss_scaler = self._build_scaler(loss_scale)

    def _build_scaler(self, loss_scale) -> torch.amp.GradScaler:
        if loss_scale == 'dynamic':
            return torch.amp.GradScaler(self.device_type)
        if isinstance(loss_scale, (int, float)):
            self._scale_update_param = float(loss_scale)
            return torch.amp.GradScaler(
                self.device_type, init_scale=float(loss_scale))
        if isinstance(loss_scale, dict):
            return torch.amp.GradScaler(self.device_type, **loss_scale)
        raise TypeError('loss_scale must be "dynamic", a float or a dict, '
                        f'got {loss_scale!r}.')

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate ``loss`` (scaled under fp16)."""
        if self.loss_scaler is not None:
            loss = self.loss_scaler.scale(loss)
        loss.backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs) -> None:
        """Drop frozen gradients, unscale, clip, then step (or skip)."""
        if self.loss_scaler is None:
            super().step(**kwargs)
            return
        self.drop_frozen_grads()
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        scale = self.loss_scaler.get_scale()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._scale_update_param)
        # The dynamic scaler backs off exactly when it skipped the step.
        if self.loss_scaler.get_scale() < scale:
            self.skipped_steps += 1
            print_log(
                'fp16: the GradScaler skipped an optimizer step (inf/NaN '
                f'gradients); loss scale {scale:g} -> '
                f'{self.loss_scaler.get_scale():g}. Normal now and then '
                'under fp16; the run goes on.',
                logger='current',
                level=30)
        self.message_hub.update_scalar('train/amp_skipped_steps',
                                       self.skipped_steps)

    def state_dict(self) -> dict:
        """Optimizer state plus ``loss_scaler`` (mmengine's layout)."""
        state = super().state_dict()
        if self.loss_scaler is not None:
            state['loss_scaler'] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Load :meth:`state_dict` output (also an fp32 wrapper's)."""
        state_dict = dict(state_dict)
        scaler = state_dict.pop('loss_scaler', None)
        if scaler is not None and self.loss_scaler is not None:
            self.loss_scaler.load_state_dict(scaler)
        super().load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Autocast (and no gradient sync while accumulating)."""
        with super().optim_context(model), torch.autocast(
                device_type=self.device_type, dtype=self.cast_dtype):
            yield
