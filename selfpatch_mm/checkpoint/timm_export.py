# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Describe our ViT weights as a timm ``VisionTransformer``.

timm's own folder format (what ``timm.models.push_to_hf_hub`` writes and
``timm.create_model('local-dir:DIR')`` reads) is a ``config.json`` with
``architecture``, ``model_args`` and ``pretrained_cfg``, beside a
``model.safetensors`` of timm-named tensors. The SelfPatch backbone has no
[CLS] token and no final norm (alinlab/SelfPatch
``selfpatch_vision_transformer.py``, commit 81aef14: ``pos_embed`` of
``num_patches`` positions, ``forward`` returns the last block's tokens), so
the timm model is built with ``class_token=False, final_norm=False``:
``forward_features`` then gives exactly those tokens. ``global_pool='avg',
fc_norm=False`` makes ``forward`` (with ``num_classes=0``) their mean.

Nothing here imports timm: the export works without it.
"""
import math
from typing import Any, Dict, Optional, Tuple

from .keys import StateDict
from .official_export import to_official_vit

__all__ = ['timm_vit_export', 'TIMM_WEIGHTS', 'TIMM_CONFIG']

TIMM_WEIGHTS = 'model.safetensors'
TIMM_CONFIG = 'config.json'

# timm registers these names; model_args override all of their sizes, so
# the name is a label for the closest standard ViT.
_TIMM_NAMES = {192: 'tiny', 384: 'small', 768: 'base', 1024: 'large'}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _architecture(embed_dim: int, patch_size: int) -> str:
    size = _TIMM_NAMES.get(embed_dim, 'small')
    if patch_size == 8 and size in ('small', 'base'):
        return f'vit_{size}_patch8_224'
    return f'vit_{size}_patch16_224'


def timm_vit_export(vit: Dict[str, Any],
                    num_heads: Optional[int] = None,
                    source: str = '') -> Tuple[StateDict, Dict[str, Any]]:
    """timm tensors and ``config.json`` content for our ViT weights.

    Args:
        vit (dict): Our ViT keys without prefix (as
            :func:`extract_vit_state_dict` gives them).
        num_heads (int, optional): Attention heads; weights do not record
            them. None takes the standard ViT head width of 64
            (ViT-T/S/B/L: 3/6/12/16 heads).
        source (str): Where the weights came from, kept in the config.

    Returns:
        tuple[dict, dict]: timm state dict and the ``config.json`` dict.

    Raises:
        ValueError: When ``num_heads`` is needed and cannot be derived, or
            does not divide the width.
    """
    state = to_official_vit(vit)
    proj = state['patch_embed.proj.weight']
    embed_dim, patch_size = proj.shape[0], proj.shape[-1]
    depth = 1 + max(int(k.split('.')[1]) for k in state
                    if k.startswith('blocks.'))
    if num_heads is None:
        if embed_dim % 64:
            raise ValueError(
                f'Cannot tell the number of attention heads of a '
                f'{embed_dim}-d ViT from its weights: pass --num-heads '
                '(the num_heads of the backbone arch in its config).')
        num_heads = embed_dim // 64
    if num_heads <= 0 or embed_dim % num_heads:
        raise ValueError(f'num_heads={num_heads} does not divide the ViT '
                         f'width {embed_dim}.')
    class_token = 'cls_token' in state
    n_pos = state['pos_embed'].shape[1] - int(class_token)
    grid = math.isqrt(n_pos)
    if grid * grid != n_pos:
        raise ValueError(f'pos_embed holds {n_pos} patch positions, not a '
                         'square grid: timm stores a square img_size.')
    img_size = grid * patch_size
    model_args = dict(
        img_size=img_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=state['blocks.0.mlp.fc1.weight'].shape[0] / embed_dim,
        qkv_bias='blocks.0.attn.qkv.bias' in state,
        class_token=class_token,
        global_pool='token' if class_token else 'avg',
        fc_norm=False,
        final_norm='norm.weight' in state,
        num_classes=0)
    pretrained_cfg = dict(
        tag='selfpatch',
        input_size=[3, img_size, img_size],
        fixed_input_size=True,
        interpolation='bicubic',
        crop_pct=0.875,
        crop_mode='center',
        mean=list(_IMAGENET_MEAN),
        std=list(_IMAGENET_STD),
        num_classes=0,
        first_conv='patch_embed.proj',
        classifier='head')
    config = dict(
        architecture=_architecture(embed_dim, patch_size),
        num_classes=0,
        num_features=embed_dim,
        global_pool=model_args['global_pool'],
        model_args=model_args,
        pretrained_cfg=pretrained_cfg,
        # timm reads only the keys above; this one is provenance
        selfpatch_source=source)
    return state, config
