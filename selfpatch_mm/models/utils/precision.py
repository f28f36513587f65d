# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""fp32 regions inside mixed-precision training.

Under ``torch.autocast``, matmul-based ops (``einsum``, ``bmm``, ``linear``)
run in fp16/bf16 even when their inputs were cast to fp32. A reduction over
batch x patches x 4096 outputs then passes fp16's 65,504 and becomes ``inf``.
Code that reduces over many elements or feeds a softmax therefore turns
autocast off *and* casts its inputs, so no caller can forget either.
"""
import torch

__all__ = ['autocast_off']


def autocast_off(tensor: torch.Tensor) -> torch.autocast:
    """A context in which autocast is disabled on ``tensor``'s device.

    Args:
        tensor (Tensor): Any tensor on the device whose autocast is turned
            off (ops inside then run in their inputs' dtype: cast them with
            ``.float()``).

    Returns:
        torch.autocast: The context manager.
    """
    return torch.autocast(device_type=tensor.device.type, enabled=False)
