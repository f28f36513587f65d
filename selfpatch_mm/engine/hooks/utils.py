# Copyright (c) selfpatch_mm contributors. All rights reserved.
from mmengine.model import is_model_wrapper
from torch import nn

__all__ = ['unwrap_model']


def unwrap_model(runner) -> nn.Module:
    """The runner's model without its DDP/FSDP wrapper, if any."""
    model = runner.model
    return model.module if is_model_wrapper(model) else model
