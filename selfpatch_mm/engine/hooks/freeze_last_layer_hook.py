# Copyright (c) selfpatch_mm contributors. All rights reserved.
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from .utils import unwrap_model

__all__ = ['FreezeLastLayerHook']


@HOOKS.register_module()
class FreezeLastLayerHook(Hook):
    """Keeps the heads' last layers fixed for the first epochs (official
    ``cancel_gradients_last_layer``, 1 epoch by default).

    It needs an optimizer wrapper with ``set_frozen_params``, i.e.
    ``SelfPatchOptimWrapper`` or ``SelfPatchAmpOptimWrapper``.

    Args:
        num_epochs (int): Epochs during which the last layers get no update.
        key (str): Substring of the frozen parameters' names.
    """

    def __init__(self, num_epochs: int = 1, key: str = 'last_layer') -> None:
        self.num_epochs = num_epochs
        self.key = key

    def before_train_epoch(self, runner) -> None:
        wrapper = runner.optim_wrapper
        if not hasattr(wrapper, 'set_frozen_params'):
            raise TypeError(
                'FreezeLastLayerHook needs optim_wrapper.type='
                "'SelfPatchOptimWrapper' (or 'SelfPatchAmpOptimWrapper'), "
                f'got {type(wrapper).__name__}.')
        model = unwrap_model(runner)
        frozen = [
            p for n, p in model.named_parameters()
            if self.key in n and p.requires_grad
        ] if runner.epoch < self.num_epochs else []
        wrapper.set_frozen_params(frozen)
