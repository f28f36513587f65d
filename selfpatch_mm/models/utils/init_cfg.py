# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""mmengine's ``init_cfg`` convention, shared by the modules that have an
official initialisation of their own."""
from typing import Any

__all__ = ['is_pretrained_init']


def is_pretrained_init(init_cfg: Any) -> bool:
    """Whether ``init_cfg`` loads weights (``dict(type='Pretrained', ...)``),
    so ``init_weights`` must not overwrite them with the official random
    initialisation."""
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'
