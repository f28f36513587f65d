# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Detect a checkpoint's layout and take its ViT weights.

Three layouts are understood:

* ``selfpatch_mm``: what our pretraining writes (an mmengine checkpoint whose
  ``state_dict`` holds ``backbone.*``, ``neck.*``, ``head.*``,
  ``patch_head.*`` and the EMA teacher under ``teacher.*``), or a
  backbone-only file (mmpretrain ViT keys without prefix, ``.pth`` or
  ``.safetensors``) written by ``tools/model_converters/extract_backbone.py``;
* ``official_full`` and ``official_backbone``: the authors' training
  checkpoint and DINO-style ViTs (see :mod:`.official`).
"""
from typing import Any, Callable, Dict, List, Optional, Tuple

from .keys import (StateDict, get_state_dict, is_vit_key,
                   strip_optional_prefix, strip_prefix, summarise_prefixes)
from .official import (convert_official_full, convert_official_vit,
                       official_backbone_dict)

__all__ = [
    'detect_layout', 'convert_official_checkpoint', 'extract_vit_state_dict'
]


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
        teacher = strip_optional_prefix(ckpt['teacher'], 'module.')
        if any(k.startswith('ca_head.') for k in teacher):
            return 'official_full'
    if official_backbone_dict(ckpt) is not None:
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
        sd = convert_official_vit(official_backbone_dict(ckpt), dropped)
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
    if not isinstance(ckpt, dict):
        raise ValueError(f'{filename} holds a {type(ckpt).__name__}, not a '
                         'checkpoint dict of weights.')
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
        vit = {
            k: v
            for k, v in strip_prefix(sd, cand).items() if is_vit_key(k)
        }
        if vit:
            if key == 'teacher' and cand == 'backbone.' and prefix is None:
                log(f'{filename} has no teacher (teacher.backbone.*): '
                    'using the student backbone.* weights.')
            return vit, f'{cand}*' if cand else 'backbone-only keys'
    looked = [c + '{pos_embed,patch_embed.projection,layers.N}'
              for c in candidates]
    raise ValueError(
        f'No usable ViT backbone weights in {filename}: looked for {looked}'
        f' but found key prefixes {summarise_prefixes(sd, depth=2)}. Pass a '
        'selfpatch_mm pretraining checkpoint, a file written by '
        'tools/model_converters/extract_backbone.py, or convert an official '
        'file with tools/model_converters/official_to_mm.py.')
