# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Key mapping from the authors' files (alinlab/SelfPatch
``main_selfpatch.py``, DINO-style ViTs) to selfpatch_mm's.

* ``official_full``: the training checkpoint: ``student`` (keys prefixed
  ``module.``) and ``teacher`` state dicts with ``backbone.*`` (timm-style
  ViT), ``ca_head.*``, ``c_head.*``, ``p_head.*``, plus ``dino_loss``
  centres;
* ``official_backbone``: a DINO-style ViT state dict (``patch_embed.proj``,
  ``pos_embed``, ``blocks.N``), possibly under ``teacher``/``state_dict``/
  ``model`` and with ``module.``/``backbone.`` prefixes.

Paper: https://arxiv.org/abs/2206.07990.
"""
import re
from typing import Any, Dict, List, Optional, Tuple

from .keys import (StateDict, get_state_dict, strip_optional_prefix,
                   strip_prefix)
from .pos_embed import drop_cls_pos_embed

__all__ = [
    'convert_official_vit', 'convert_official_full', 'has_official_vit',
    'official_backbone_dict'
]

# timm / DINO ViT names and ours (mmpretrain VisionTransformer), ``#`` for a
# block index; :mod:`.official_export` maps the other way.
VIT_NAME_PAIRS: List[Tuple[str, str]] = [
    ('patch_embed.proj.', 'patch_embed.projection.'),
    ('blocks.#.norm1.', 'layers.#.ln1.'),
    ('blocks.#.norm2.', 'layers.#.ln2.'),
    ('blocks.#.attn.qkv.', 'layers.#.attn.qkv.'),
    ('blocks.#.attn.proj.', 'layers.#.attn.proj.'),
    ('blocks.#.mlp.fc1.', 'layers.#.ffn.layers.0.0.'),
    ('blocks.#.mlp.fc2.', 'layers.#.ffn.layers.1.'),
]


def name_rules(pairs: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """``(src, dst)`` name prefixes -> ``(regex, replacement)`` rules."""
    return [('^' + re.escape(src).replace('\\#', r'(\d+)'),
             dst.replace('#', r'\1')) for src, dst in pairs]


def rename(key: str, rules: List[Tuple[str, str]]) -> Optional[str]:
    """``key`` renamed by the first rule that matches, or None."""
    for pattern, repl in rules:
        new_key, n = re.subn(pattern, repl, key)
        if n:
            return new_key
    return None


_OFFICIAL_VIT_RULES = name_rules(VIT_NAME_PAIRS)
# Official parts with no counterpart in the SelfPatch backbone (DINO's final
# norm and [CLS] token, classifier heads): dropped with a note.
_OFFICIAL_VIT_DROPPED = ('norm.', 'cls_token', 'head.', 'fc.')

# Official aggregation module (``SelfPatchHead``) / DINO heads -> ours.
_OFFICIAL_PART_PREFIX = {
    'ca_head.': 'neck.',
    'c_head.': 'head.',
    'p_head.': 'patch_head.',
}
_WEIGHT_NORM_KEYS = {
    'last_layer.weight_g': 'last_layer.parametrizations.weight.original0',
    'last_layer.weight_v': 'last_layer.parametrizations.weight.original1',
}

_OFFICIAL_VIT_KEY = re.compile(
    r'^(pos_embed$|patch_embed\.proj\.|blocks\.\d+\.)')


def has_official_vit(state_dict: Dict[str, Any]) -> bool:
    return any(_OFFICIAL_VIT_KEY.match(k) for k in state_dict) and any(
        k.startswith('blocks.') for k in state_dict)


def convert_official_vit(state_dict: Dict[str, Any],
                         dropped: Optional[List[str]] = None) -> StateDict:
    """Convert timm/DINO ViT keys to our mmpretrain ViT keys.

    Args:
        state_dict (dict): Official ViT keys (no prefix).
        dropped (list, optional): Receives the keys that have no counterpart
            (final ``norm``, ``cls_token``, heads).

    Returns:
        dict: ``pos_embed`` (without a [CLS] position),
        ``patch_embed.projection.*`` and ``layers.N.*`` tensors.

    Raises:
        KeyError: For a key that is neither mapped nor known to be unused.
    """
    out = {}
    for key, value in state_dict.items():
        if key == 'pos_embed':
            out[key] = drop_cls_pos_embed(value)
            continue
        new_key = rename(key, _OFFICIAL_VIT_RULES)
        if new_key is not None:
            out[new_key] = value
        elif key.startswith(_OFFICIAL_VIT_DROPPED):
            if dropped is not None:
                dropped.append(key)
        else:
            raise KeyError(
                f'Unknown key {key!r} in an official ViT state dict: expected '
                'patch_embed.proj.*, pos_embed, blocks.N.{norm1,attn.qkv,'
                'attn.proj,norm2,mlp.fc1,mlp.fc2}.*')
    return out


def _convert_official_net(net: Dict[str, Any], prefix: str) -> StateDict:
    """One official ``MultiCropWrapper`` state dict -> our keys."""
    net = strip_optional_prefix(net, 'module.')
    vit = convert_official_vit(strip_prefix(net, 'backbone.'))
    out = {prefix + 'backbone.' + k: v for k, v in vit.items()}
    for src, dst in _OFFICIAL_PART_PREFIX.items():
        for key, value in strip_prefix(net, src).items():
            if src == 'ca_head.':
                key = key.replace('cls_blocks.', 'blocks.', 1)
            else:
                if re.match(r'^mlp\.\d+\.running_', key):
                    raise KeyError(
                        f'{src}{key}: heads with BatchNorm (official '
                        '--use_bn_in_head) are not supported.')
                if re.match(r'^mlp\.(weight|bias)$', key):  # 1-layer head
                    key = 'mlp.0.' + key[len('mlp.'):]
                key = _WEIGHT_NORM_KEYS.get(key, key)
            out[prefix + dst + key] = value
    known = ('backbone.', *_OFFICIAL_PART_PREFIX)
    unknown = [k for k in net if not k.startswith(known)]
    if unknown:
        raise KeyError(f'Unknown keys in the official checkpoint: {unknown}; '
                       f'expected prefixes {known}.')
    return out


def convert_official_full(ckpt: Dict[str, Any]) -> StateDict:
    """Convert an official SelfPatch training checkpoint.

    The student becomes our top-level model (``backbone``, ``neck``,
    ``head``, ``patch_head``), the teacher ``teacher.*``, and
    ``dino_loss.center``/``patch_center`` the centres of our losses.

    Args:
        ckpt (dict): With ``student``, ``teacher`` and, optionally,
            ``dino_loss``.

    Returns:
        dict: A state dict loadable by the ``SelfPatch`` model.
    """
    out = _convert_official_net(ckpt['student'], '')
    out.update(_convert_official_net(ckpt['teacher'], 'teacher.'))
    loss = ckpt.get('dino_loss') or {}
    if 'center' in loss:
        out['head.loss_module.center'] = loss['center'].reshape(1, -1)
    if 'patch_center' in loss:
        out['patch_head.loss_module.center'] = \
            loss['patch_center'].reshape(1, -1)
    return out


def official_backbone_dict(ckpt: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The DINO-style ViT state dict inside ``ckpt``, or None."""
    sd = ckpt.get('teacher', ckpt)
    if isinstance(sd, dict):
        sd = get_state_dict(sd)
        for prefix in ('module.', 'backbone.'):
            stripped = strip_prefix(sd, prefix)
            if has_official_vit(stripped):
                sd = stripped
        if has_official_vit(sd):
            return sd
    return None
