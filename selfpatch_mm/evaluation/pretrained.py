# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Load the backbone and aggregation neck of a SelfPatch checkpoint.

The analysis tools (DAVIS label propagation, patch pictures, k-NN) evaluate
pretrained SelfPatch (https://arxiv.org/abs/2206.07990) features without
fine-tuning. They build only the backbone and the neck from the pretraining
config and take their weights from the EMA teacher (``teacher.backbone.*``,
``teacher.neck.*``), as the official evaluation scripts do, or from the
student.
"""
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.config import Config
from torch import nn

from ..checkpoint import (WEIGHT_KEYS, get_state_dict, load_checkpoint_file,
                          strip_prefix)

__all__ = ['PretrainedSelfPatch', 'load_pretrained_selfpatch']

KEYS = WEIGHT_KEYS


@dataclass
class PretrainedSelfPatch:
    """A pretrained backbone and neck plus the input normalisation.

    Attributes:
        backbone (nn.Module): :class:`SelfPatchViT` (or any backbone whose
            last output is a ``(B, C, H, W)`` patch feature map).
        neck (nn.Module | None): :class:`SelfPatchNeck`, None when the config
            or the checkpoint has none.
        mean (np.ndarray): RGB (or BGR, see ``to_rgb``) mean, 0-255 scale.
        std (np.ndarray): Standard deviation, 0-255 scale.
        to_rgb (bool): Whether images read as BGR are flipped to RGB.
        patch_size (int): Patch size of the backbone.
        device (torch.device): Where the modules live.
    """
    backbone: nn.Module
    neck: Optional[nn.Module]
    mean: np.ndarray
    std: np.ndarray
    to_rgb: bool
    patch_size: int
    device: torch.device

    def preprocess(self, img_bgr: np.ndarray) -> torch.Tensor:
        """``(H, W, 3)`` uint8 BGR image to a normalised ``(3, H, W)``
        tensor on :attr:`device`, as the config's data preprocessor does."""
        if img_bgr.ndim != 3 or img_bgr.shape[2] != 3:
            raise ValueError('Expected an (H, W, 3) image, got shape '
                             f'{img_bgr.shape}.')
        img = img_bgr[..., ::-1] if self.to_rgb else img_bgr
        img = (img.astype(np.float32) - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(img.transpose(
            2, 0, 1))).to(self.device)

    @torch.no_grad()
    def featmap(self, x: torch.Tensor) -> torch.Tensor:
        """Last block's patch features ``(B, C, H/p, W/p)`` of images
        ``(B, 3, H, W)`` (or one ``(3, H, W)`` image, batched)."""
        if x.dim() == 3:
            x = x[None]
        return self.backbone(x)[-1]


def _patch_size(backbone: nn.Module) -> int:
    size = getattr(backbone, 'patch_size', None)
    if size is None:  # mmpretrain ViTs keep it on the patch embedding
        size = backbone.patch_embed.projection.kernel_size[0]
    return int(size if np.isscalar(size) else size[0])


def load_pretrained_selfpatch(
        config: str,
        checkpoint: Optional[str],
        key: str = 'teacher',
        device: Optional[str] = None,
        cfg_options: Optional[dict] = None) -> PretrainedSelfPatch:
    """Build the backbone and neck of a pretraining config and load weights.

    Args:
        config (str): A selfpatch_mm pretraining config (``model.backbone``,
            optionally ``model.neck`` and ``model.data_preprocessor``).
        checkpoint (str | None): A checkpoint (local path or URL, ``.pth``
            or ``.safetensors``, read as data by
            :func:`selfpatch_mm.checkpoint.load_checkpoint_file`) in any
            layout the converters know (ours, backbone-only, or the
            authors'). None keeps the random initialisation (for tests and
            debugging only).
        key (str): ``'teacher'`` loads ``teacher.backbone.*`` /
            ``teacher.neck.*``, ``'student'`` loads ``backbone.*`` /
            ``neck.*``.
        device (str, optional): Defaults to CUDA when available.
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        PretrainedSelfPatch: The modules, in eval mode without gradients.

    Raises:
        ValueError: For an unknown ``key``.
        ValueError: When the checkpoint has no usable ViT weights (the
            message lists the prefixes it holds).
    """
    import selfpatch_mm.models  # noqa: F401  (registers the models)
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    if key not in KEYS:
        raise ValueError(f'key must be one of {KEYS}, got {key!r}.')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg or 'backbone' not in cfg.model:
        raise KeyError(f'{config} has no `model.backbone`; pass a '
                       'selfpatch_mm pretraining config.')
    device = torch.device(
        device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    # mmpretrain's scope, whatever scope a Runner (mmengine, mmdet, mmseg)
    # left current: a registry builds in the current default scope.
    backbone_cfg = cfg.model.backbone.copy()
    if checkpoint is not None:
        # The backbones' own loading path (any layout the converters know:
        # ours, backbone-only, official), as a dense config's init_cfg.
        backbone_cfg.init_cfg = dict(
            type='Pretrained', checkpoint=checkpoint, checkpoint_key=key)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        backbone = MODELS.build(backbone_cfg)
        neck = MODELS.build(cfg.model.neck) if cfg.model.get('neck') \
            else None
    backbone.init_weights()
    if neck is not None:
        neck.init_weights()
    if neck is not None and checkpoint is not None:
        # The neck has no layout variants: its weights are a prefix of ours.
        # A backbone-only or official file has none: no neck then.
        neck_state = _neck_weights(checkpoint, key)
        if neck_state:
            _load_part(neck, neck_state, f'{key} neck', checkpoint)
        else:
            neck = None
    pre = cfg.model.get('data_preprocessor', None) or {}
    mean = np.asarray(pre.get('mean', [123.675, 116.28, 103.53]), np.float32)
    std = np.asarray(pre.get('std', [58.395, 57.12, 57.375]), np.float32)
    modules = [m for m in (backbone, neck) if m is not None]
    for m in modules:
        # mmpretrain's ViT.train() returns None: no chaining after eval().
        m.to(device).requires_grad_(False)
        m.eval()
    return PretrainedSelfPatch(
        backbone=backbone,
        neck=neck,
        mean=mean,
        std=std,
        to_rgb=bool(pre.get('to_rgb', pre.get('bgr_to_rgb', True))),
        patch_size=_patch_size(backbone),
        device=device)


def _neck_weights(checkpoint: str, key: str) -> Dict[str, torch.Tensor]:
    """The neck's weights in a file of ours (``teacher.neck.*`` or
    ``neck.*``); empty for other layouts."""
    ckpt = load_checkpoint_file(checkpoint)
    if not isinstance(ckpt, dict):
        return {}
    prefix = 'teacher.neck.' if key == 'teacher' else 'neck.'
    return strip_prefix(get_state_dict(ckpt), prefix)


def _load_part(module: nn.Module, state: Dict[str, torch.Tensor], what: str,
               checkpoint: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RuntimeError(
            f'The {what} weights of {checkpoint} do not fit the config\'s '
            f'model (check the config matches the checkpoint): {err}') from err
