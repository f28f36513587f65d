# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Key helpers shared by the checkpoint layouts: where a state dict sits in
a checkpoint, prefixes, and which keys belong to our (mmpretrain) ViT."""
import re
from collections import Counter
from typing import Any, Dict, Iterable

import torch

__all__ = [
    'WEIGHT_KEYS', 'StateDict', 'get_state_dict', 'is_vit_key', 'strip_prefix',
    'strip_optional_prefix', 'summarise_prefixes'
]

StateDict = Dict[str, torch.Tensor]

#: The two networks of a pretraining checkpoint whose weights can be used.
WEIGHT_KEYS = ('teacher', 'student')

# cls_token and the final norm ln1 exist only in the standard DINO ViT
# (with_cls_token=True, final_norm=True); a SelfPatch ViT has neither.
_VIT_KEY = re.compile(r'^(pos_embed$|cls_token$|ln1\.|'
                      r'patch_embed\.projection\.|layers\.\d+\.)')


def is_vit_key(key: str) -> bool:
    """Whether ``key`` names a parameter of our (mmpretrain) ViT."""
    return _VIT_KEY.match(key) is not None


def get_state_dict(ckpt: Any) -> Dict[str, Any]:
    """The state dict of an mmengine/timm-style checkpoint dict."""
    if not isinstance(ckpt, dict):
        raise TypeError(f'Expected a checkpoint dict, got {type(ckpt)}.')
    for key in ('state_dict', 'model'):
        if isinstance(ckpt.get(key), dict):
            return ckpt[key]
    return ckpt


def summarise_prefixes(keys: Iterable[str], depth: int = 1) -> str:
    """``'backbone.(12), neck.(30)'``-style summary of key prefixes."""
    counts = Counter('.'.join(k.split('.')[:depth]) for k in keys)
    if not counts:
        return '(no keys)'
    return ', '.join(f'{p}({n})' for p, n in sorted(counts.items()))


def strip_prefix(state_dict: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    """Keys starting with ``prefix``, prefix removed."""
    n = len(prefix)
    return {k[n:]: v for k, v in state_dict.items() if k.startswith(prefix)}


def strip_optional_prefix(state_dict: Dict[str, Any],
                          prefix: str) -> Dict[str, Any]:
    """Remove ``prefix`` when every key has it (DDP's ``module.``)."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return strip_prefix(state_dict, prefix)
    return state_dict
