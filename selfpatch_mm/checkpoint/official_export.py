# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Key mapping back from selfpatch_mm to the authors' layout: the inverse
of :mod:`.official`.

The authors' ``main_selfpatch.py`` (alinlab/SelfPatch, commit 81aef14)
saves ``{'student': student.state_dict(), 'teacher': teacher.state_dict(),
'optimizer', 'epoch', 'args', 'dino_loss': dino_loss.state_dict()}``: the
student is a ``DistributedDataParallel`` (keys ``module.backbone.*``,
``module.ca_head.*``, ``module.c_head.*``, ``module.p_head.*``), the teacher
is not (no BatchNorm in the heads), and ``dino_loss`` holds ``center``
``(1, 1, K)`` and ``patch_center`` ``(1, K_p)``. The same timm/DINO ViT
names serve the timm export (:mod:`.timm_export`).
"""
import re
from typing import Any, Dict

from .keys import StateDict, strip_prefix
from .official import (_OFFICIAL_PART_PREFIX, _WEIGHT_NORM_KEYS,
                       VIT_NAME_PAIRS, name_rules, rename)

__all__ = ['to_official_vit', 'to_official_full']

# Our mmpretrain ViT names -> timm/DINO's. ``cls_token`` and the final norm
# ``ln1`` exist in the standard DINO ViT only (this package's
# DINOSelfSupervisor); timm names them ``cls_token`` and ``norm``.
_TO_OFFICIAL_VIT_RULES = name_rules(
    [(ours, theirs) for theirs, ours in VIT_NAME_PAIRS] + [('ln1.', 'norm.')])
_FROM_WEIGHT_NORM = {v: k for k, v in _WEIGHT_NORM_KEYS.items()}
_LOSS_CENTRES = {
    'head.loss_module.center': 'center',
    'patch_head.loss_module.center': 'patch_center',
}


def to_official_vit(state_dict: Dict[str, Any]) -> StateDict:
    """Our ViT keys (no prefix) -> timm/DINO ViT keys.

    Args:
        state_dict (dict): ``pos_embed``, ``patch_embed.projection.*``,
            ``layers.N.*`` (and ``cls_token``/``ln1.*`` for a DINO ViT).

    Returns:
        dict: ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.*``
        (``cls_token``, ``norm.*``); the same tensors, in the same order.

    Raises:
        KeyError: For a key this mapping does not know, named with the
            keys that are expected.
    """
    out = {}
    for key, value in state_dict.items():
        new_key = key if key in ('pos_embed', 'cls_token') else rename(
            key, _TO_OFFICIAL_VIT_RULES)
        if new_key is None:
            raise KeyError(
                f'Unknown key {key!r} in a selfpatch_mm ViT state dict: '
                'expected pos_embed, cls_token, ln1.*, '
                'patch_embed.projection.* or layers.N.{ln1,attn.qkv,'
                'attn.proj,ln2,ffn.layers.0.0,ffn.layers.1}.* (a layer '
                'scale or another arch has no official counterpart).')
        out[new_key] = value
    return out


def _to_official_head(head: Dict[str, Any]) -> Dict[str, Any]:
    """Our DINO head keys -> the official ``DINOHead``'s."""
    indices = {m.group(1) for k in head
               for m in [re.match(r'^mlp\.(\d+)\.', k)] if m}
    out = {}
    for key, value in head.items():
        if indices == {'0'}:  # the official 1-layer head is a bare Linear
            key = re.sub(r'^mlp\.0\.', 'mlp.', key)
        out[_FROM_WEIGHT_NORM.get(key, key)] = value
    return out


def _to_official_net(state: Dict[str, Any], prefix: str) -> StateDict:
    """One network (student: ``''``, teacher: ``'teacher.'``) -> the
    official ``MultiCropWrapper`` keys (without ``module.``)."""
    net = {k: v for k, v in strip_prefix(state, prefix).items()
           if not (prefix == '' and k.startswith('teacher.'))
           and '.loss_module.' not in k}
    out = {'backbone.' + k: v
           for k, v in to_official_vit(strip_prefix(net, 'backbone.')).items()}
    for theirs, ours in _OFFICIAL_PART_PREFIX.items():
        part = strip_prefix(net, ours)
        if ours == 'neck.':
            part = {re.sub(r'^blocks\.', 'cls_blocks.', k): v
                    for k, v in part.items()}
        else:
            part = _to_official_head(part)
        out.update({theirs + k: v for k, v in part.items()})
    known = ('backbone.', *_OFFICIAL_PART_PREFIX.values())
    unknown = [prefix + k for k in net if not k.startswith(known)]
    if unknown:
        raise KeyError(f'Keys with no place in the official checkpoint: '
                       f'{unknown[:10]}; expected {prefix}{{backbone,neck,'
                       'head,patch_head}.*')
    return out


def to_official_full(state_dict: Dict[str, Any]) -> Dict[str, Any]:
    """A full SelfPatch state dict -> the authors' ``checkpoint.pth``
    entries.

    Args:
        state_dict (dict): The ``state_dict`` of a selfpatch_mm SelfPatch
            checkpoint: the student at the top level, the EMA teacher under
            ``teacher.*``, the centres in ``head.loss_module.center`` and
            ``patch_head.loss_module.center``.

    Returns:
        dict: ``student`` (keys ``module.*``), ``teacher`` and ``dino_loss``
        (``center`` ``(1, 1, K)``, ``patch_center`` ``(1, K_p)``), holding
        the input tensors (reshaped views for the centres).

    Raises:
        KeyError: When the student, the teacher or a centre is missing, or
            a key has no place in the official layout.
    """
    missing = [k for k in ('neck.cls_token', 'teacher.neck.cls_token',
                           *_LOSS_CENTRES) if k not in state_dict]
    if missing:
        raise KeyError(
            f'Not a full SelfPatch checkpoint: {missing} missing. The '
            'official layout needs the student, the EMA teacher (teacher.*) '
            'and both loss centres, as tools/train.py saves them with a '
            'SelfPatch config.')
    student = _to_official_net(state_dict, '')
    teacher = _to_official_net(state_dict, 'teacher.')
    centre = state_dict['head.loss_module.center']
    patch_centre = state_dict['patch_head.loss_module.center']
    return dict(
        student={'module.' + k: v for k, v in student.items()},
        teacher=teacher,
        dino_loss=dict(center=centre.reshape(1, 1, -1),
                       patch_center=patch_centre.reshape(1, -1)))
