# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Checkpoint layouts and key mappings shared by the converters and the
dense-transfer backbone.

Three layouts are understood:

* ``selfpatch_mm``: what our pretraining writes (an mmengine checkpoint whose
  ``state_dict`` holds ``backbone.*``, ``neck.*``, ``head.*``,
  ``patch_head.*`` and the EMA teacher under ``teacher.*``), or a
  backbone-only file (mmpretrain ViT keys without prefix) written by
  ``tools/model_converters/extract_backbone.py``;
* ``official_full``: the training checkpoint of alinlab/SelfPatch
  (``main_selfpatch.py``): ``student`` (keys prefixed ``module.``) and
  ``teacher`` state dicts with ``backbone.*`` (timm-style ViT),
  ``ca_head.*``, ``c_head.*``, ``p_head.*``, plus ``dino_loss`` centres;
* ``official_backbone``: a DINO-style ViT state dict (``patch_embed.proj``,
  ``pos_embed``, ``blocks.N``), possibly under ``teacher``/``state_dict``/
  ``model`` and with ``module.``/``backbone.`` prefixes.

Paper: https://arxiv.org/abs/2201.06857.
"""
import math
import re
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch

__all__ = [
    'load_checkpoint_file', 'get_state_dict', 'detect_layout',
    'convert_official_vit', 'convert_official_full',
    'convert_official_checkpoint', 'extract_vit_state_dict',
    'drop_cls_pos_embed', 'summarise_prefixes', 'is_vit_key', 'strip_prefix'
]

StateDict = Dict[str, torch.Tensor]

# timm / DINO ViT block names -> mmpretrain VisionTransformer names.
_OFFICIAL_VIT_RULES: List[Tuple[str, str]] = [
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^blocks\.(\d+)\.norm1\.', r'layers.\1.ln1.'),
    (r'^blocks\.(\d+)\.norm2\.', r'layers.\1.ln2.'),
    (r'^blocks\.(\d+)\.attn\.qkv\.', r'layers.\1.attn.qkv.'),
    (r'^blocks\.(\d+)\.attn\.proj\.', r'layers.\1.attn.proj.'),
    (r'^blocks\.(\d+)\.mlp\.fc1\.', r'layers.\1.ffn.layers.0.0.'),
    (r'^blocks\.(\d+)\.mlp\.fc2\.', r'layers.\1.ffn.layers.1.'),
]
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

_VIT_KEY = re.compile(r'^(pos_embed$|patch_embed\.projection\.|layers\.\d+\.)')
_OFFICIAL_VIT_KEY = re.compile(r'^(pos_embed$|patch_embed\.proj\.|blocks\.\d+\.)')


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


def _strip_optional(state_dict: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    """Remove ``prefix`` when every key has it (DDP's ``module.``)."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return strip_prefix(state_dict, prefix)
    return state_dict


def drop_cls_pos_embed(pos_embed: torch.Tensor) -> torch.Tensor:
    """Drop the [CLS] position of a ``(1, 1 + H*W, C)`` embedding.

    DINO's ViT stores a position for its [CLS] token; the SelfPatch
    backbone has none. Embeddings whose length is already a square are
    returned unchanged.
    """
    n = pos_embed.shape[1]
    if math.isqrt(n)**2 != n and math.isqrt(n - 1)**2 == n - 1:
        return pos_embed[:, 1:]
    return pos_embed


def _has_official_vit(state_dict: Dict[str, Any]) -> bool:
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
        for pattern, repl in _OFFICIAL_VIT_RULES:
            new_key, n = re.subn(pattern, repl, key)
            if n:
                out[new_key] = value
                break
        else:
            if key.startswith(_OFFICIAL_VIT_DROPPED):
                if dropped is not None:
                    dropped.append(key)
                continue
            raise KeyError(
                f'Unknown key {key!r} in an official ViT state dict: expected '
                'patch_embed.proj.*, pos_embed, blocks.N.{norm1,attn.qkv,'
                'attn.proj,norm2,mlp.fc1,mlp.fc2}.*')
    return out


def _convert_official_net(net: Dict[str, Any], prefix: str) -> StateDict:
    """One official ``MultiCropWrapper`` state dict -> our keys."""
    net = _strip_optional(net, 'module.')
    out = {
        prefix + 'backbone.' + k: v
        for k, v in convert_official_vit(strip_prefix(net, 'backbone.')).items()
    }
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


def _official_backbone_dict(ckpt: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The DINO-style ViT state dict inside ``ckpt``, or None."""
    sd = ckpt.get('teacher', ckpt)
    if isinstance(sd, dict):
        sd = get_state_dict(sd)
        for prefix in ('module.', 'backbone.'):
            stripped = strip_prefix(sd, prefix)
            if _has_official_vit(stripped):
                sd = stripped
        if _has_official_vit(sd):
            return sd
    return None


def detect_layout(ckpt: Any) -> str:
    """Name the layout of a loaded checkpoint.

    Returns:
        str: ``'official_full'``, ``'official_backbone'`` or
        ``'selfpatch_mm'`` (anything with our ViT keys, under any prefix).

    Raises:
        ValueError: If none fits; the message lists what was found.
    """
    if not isinstance(ckpt, dict):
        raise ValueError(f'Expected a checkpoint dict, found {type(ckpt)}.')
    if isinstance(ckpt.get('student'), dict) and \
            isinstance(ckpt.get('teacher'), dict):
        teacher = _strip_optional(ckpt['teacher'], 'module.')
        if any(k.startswith('ca_head.') for k in teacher):
            return 'official_full'
    if _official_backbone_dict(ckpt) is not None:
        return 'official_backbone'
    sd = get_state_dict(ckpt)
    if any(is_vit_key(k.split('backbone.')[-1]) for k in sd):
        return 'selfpatch_mm'
    raise ValueError(
        'Unknown checkpoint layout: top-level keys '
        f'{sorted(ckpt)[:20]}; state-dict prefixes '
        f'{summarise_prefixes(k for k in sd if isinstance(k, str))}. '
        'Expected a selfpatch_mm checkpoint (backbone.*/teacher.backbone.*), '
        'an official SelfPatch training checkpoint (student/teacher with '
        'ca_head.*) or a DINO-style ViT state dict (patch_embed.proj.*, '
        'pos_embed, blocks.N.*).')


def convert_official_checkpoint(
        ckpt: Dict[str, Any],
        log: Callable[[str], None] = print) -> Tuple[str, StateDict]:
    """Convert an official file to our keys.

    Returns:
        tuple[str, dict]: The layout (``'official_full'`` gives a full
        SelfPatch state dict, ``'official_backbone'`` a backbone-only one)
        and the converted state dict.

    Raises:
        ValueError: For other layouts.
    """
    layout = detect_layout(ckpt)
    if layout == 'official_full':
        return layout, convert_official_full(ckpt)
    if layout == 'official_backbone':
        dropped: List[str] = []
        sd = convert_official_vit(_official_backbone_dict(ckpt), dropped)
        if dropped:
            log(f'Dropped keys without a counterpart in the SelfPatch '
                f'backbone: {dropped}')
        return layout, sd
    raise ValueError('This is already a selfpatch_mm checkpoint; nothing to '
                     'convert (use extract_backbone.py for a backbone-only '
                     'file).')


def extract_vit_state_dict(ckpt: Any,
                           key: str = 'teacher',
                           prefix: Optional[str] = None,
                           filename: str = '<checkpoint>',
                           log: Callable[[str], None] = print
                           ) -> Tuple[StateDict, str]:
    """Pick the ViT weights out of any supported checkpoint.

    Args:
        ckpt (Any): A loaded checkpoint (any layout of this module).
        key (str): ``'teacher'`` (``teacher.backbone.*``, the default, as
            the official transfer uses the teacher) or ``'student'``
            (``backbone.*``).
        prefix (str, optional): Use exactly this prefix instead.
        filename (str): Named in messages.
        log (callable): Receives notes (fallbacks, dropped keys).

    Returns:
        tuple[dict, str]: Our ViT keys without prefix, and a description of
        where they came from.

    Raises:
        ValueError: If ``key`` is unknown or no ViT weights are found; the
            message names the file and the key prefixes it holds.
    """
    if key not in ('teacher', 'student'):
        raise ValueError(f'checkpoint_key must be "teacher" or "student", '
                         f'got {key!r}.')
    if isinstance(ckpt, dict) and not ('state_dict' in ckpt
                                       and isinstance(ckpt['state_dict'],
                                                      dict)):
        try:
            layout = detect_layout(ckpt)
        except ValueError:
            layout = None
        if layout == 'official_full':
            ckpt = {'state_dict': convert_official_full(ckpt)}
            log(f'{filename}: converted an official SelfPatch checkpoint.')
        elif layout == 'official_backbone':
            if 'student' in ckpt and key == 'student':
                ckpt = dict(teacher=ckpt['student'])
            _, sd = convert_official_checkpoint(ckpt, log)
            log(f'{filename}: converted an official DINO-style ViT.')
            return sd, 'official ViT'
    sd = get_state_dict(ckpt)
    if prefix is not None:
        candidates = [prefix]
    elif key == 'teacher':
        candidates = ['teacher.backbone.', '', 'backbone.']
    else:
        candidates = ['backbone.', '']
    for cand in candidates:
        vit = {k: v for k, v in strip_prefix(sd, cand).items() if is_vit_key(k)}
        if vit:
            if key == 'teacher' and cand == 'backbone.' and prefix is None:
                log(f'{filename} has no teacher (teacher.backbone.*): '
                    'using the student backbone.* weights.')
            return vit, f'{cand}*' if cand else 'backbone-only keys'
    raise ValueError(
        f'No usable ViT backbone weights in {filename}: looked for '
        f'{[c + "{pos_embed,patch_embed.projection,layers.N}" for c in candidates]}'
        f' but found key prefixes {summarise_prefixes(sd, depth=2)}. Pass a '
        'selfpatch_mm pretraining checkpoint, a file written by '
        'tools/model_converters/extract_backbone.py, or convert an official '
        'file with tools/model_converters/official_to_mm.py.')
