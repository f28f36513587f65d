# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""SelfPatch ViT with four feature maps for dense transfer.

SelfPatch (https://arxiv.org/abs/2206.07990) evaluates its ViT-S/16 on COCO
(Mask R-CNN + FPN) and ADE20K (Semantic FPN). Both official backbones take
the tokens of four blocks, without a final norm. The detection backbone
(``detection/backbone/vit_SelfPatch.py``) turns them into strides 4, 8, 16
and 32 with transposed convolutions and max pooling (``out_mode='pyramid'``);
the segmentation backbone (``segmentation/backbones/vit_SelfPatch.py``,
``forward``) gives the four maps as they are, all at the patch stride
(``out_mode='patch_stride'``). This module does either on top of
:class:`SelfPatchViT`, so it loads our pretraining checkpoints directly.
"""
import copy
from typing import List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmengine.logging import print_log
from mmpretrain.models.utils import LayerNorm2d
from mmpretrain.registry import MODELS
from torch import nn

from ...checkpoint.pos_embed import POS_EMBED_RESIZE
from .selfpatch_vit import SelfPatchViT

__all__ = ['SelfPatchDenseViT']

_OUT_STRIDES = (4, 8, 16, 32)
OUT_MODES = ('pyramid', 'patch_stride')


@MODELS.register_module()
class SelfPatchDenseViT(SelfPatchViT):
    """ViT backbone giving four maps of blocks ``out_indices``.

    The tokens after blocks ``out_indices`` (no final norm, as in both
    official backbones) are reshaped to ``(B, C, H/p, W/p)``. With
    ``out_mode='patch_stride'`` (the official segmentation backbone) they are
    returned as they are. With ``out_mode='pyramid'`` (the default, the
    official detection backbone) they are resampled; with ``patch_size=16``:

    - stride 4: ConvTranspose2d(2, 2) -> norm -> GELU -> ConvTranspose2d;
    - stride 8: ConvTranspose2d(2, 2);
    - stride 16: identity;
    - stride 32: MaxPool2d(2).

    Other patch sizes use the same rule per factor (x4 up, x2 up, identity,
    max-pool down), e.g. patch 8 gives deconv / identity / pool 2 / pool 4.
    Position embeddings are interpolated to every input size with the
    official formula, so any input padded to a multiple of the patch size
    works (mmdet pads to multiples of 32).

    Registered in mmpretrain's ``MODELS``; mmdet and mmseg configs name it
    ``type='mmpretrain.SelfPatchDenseViT'`` and import
    ``selfpatch_mm.models`` through ``custom_imports``, as mmdet's configs
    use mmpretrain's ConvNeXt.

    Args:
        arch (str | dict): ViT arch, ``'deit-small'`` (ViT-S: 384-d, 12
            layers, 6 heads) by default, or a dict with ``embed_dims``,
            ``num_layers``, ``num_heads``, ``feedforward_channels``.
        img_size (int): Size the position embedding is stored for. Defaults
            to 224.
        patch_size (int): Patch size; 16 or 8 (any power of two from 4 to
            32 works). Defaults to 16.
        out_indices (Sequence[int]): Four block indices, shallow to deep, for
            strides 4, 8, 16, 32 (all at the patch stride with
            ``out_mode='patch_stride'``). Defaults to (3, 5, 7, 11)
            (official detection config); the official segmentation uses
            (2, 5, 8, 11).
        out_mode (str): ``'pyramid'`` (default): strides 4, 8, 16, 32
            through the resamplers above (three layers that pretraining
            did not train). ``'patch_stride'``: the four maps unchanged at
            the patch stride, no resampling layers, as the official
            Semantic FPN backbone.
        drop_path_rate (float): Stochastic depth rate. Defaults to 0.
        norm_cfg (dict): Norm between the two stride-4 deconvolutions:
            ``dict(type='SyncBN')`` (default, GPU clusters), ``'BN'`` or
            ``'LN2d'``. Without CUDA, SyncBN falls back to BN with a log
            line (SyncBN cannot synchronise CPU tensors). Unused with
            ``out_mode='patch_stride'``.
        frozen_stages (int): -1 trains everything; 0 freezes the patch and
            position embeddings; k > 0 also freezes blocks ``0..k-1``.
            Defaults to -1.
        pos_embed_resize (str): How the position table is resized, when a
            checkpoint is loaded and for inputs of other grids: ``'dino'``
            (default: the pretraining formula, also the official detection
            backbone's) or ``'mmseg'`` (a plain resize to the target size,
            the official segmentation backbone's; the ADE20K configs).
        pad_to_patch (bool): Pad inputs at the bottom and right with zeros
            to a multiple of the patch size inside the backbone, as the
            official segmentation backbone's ``PatchEmbed(padding='corner')``
            (the prediction then covers the padded input and is resized to
            the image, as officially). Defaults to False (inputs must be
            multiples of the patch size).
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH)`` loads the ViT from a selfpatch_mm pretraining
            checkpoint (the teacher by default; add
            ``checkpoint_key='student'`` for the student, or ``prefix=`` for
            any other key prefix), from a backbone-only file written by
            ``tools/model_converters/extract_backbone.py``, or from an
            official SelfPatch/DINO file (converted on the fly), ``.pth``
            or ``.safetensors``, read as data only (see
            :mod:`selfpatch_mm.checkpoint`). A few missing or unexpected ViT
            keys are logged; a file with no ViT weights, with most of them
            missing, or with shapes of another arch raises a ``ValueError``
            with a summary, unless ``allow_partial=True`` is set.
        **kwargs: Other arguments of mmpretrain's ``VisionTransformer``.
    """

    def __init__(self,
                 arch: str = 'deit-small',
                 img_size: int = 224,
                 patch_size: int = 16,
                 out_indices: Sequence[int] = (3, 5, 7, 11),
                 out_mode: str = 'pyramid',
                 drop_path_rate: float = 0.0,
                 norm_cfg: dict = dict(type='SyncBN'),
                 frozen_stages: int = -1,
                 pos_embed_resize: str = 'dino',
                 pad_to_patch: bool = False,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if 'out_type' in kwargs:
            raise TypeError('SelfPatchDenseViT: out_type is fixed to '
                            '"featmap".')
        if pos_embed_resize not in POS_EMBED_RESIZE:
            raise ValueError(f'pos_embed_resize must be one of '
                             f'{sorted(POS_EMBED_RESIZE)}, got '
                             f'{pos_embed_resize!r}.')
        if out_mode not in OUT_MODES:
            raise ValueError(f'out_mode must be one of {OUT_MODES}, got '
                             f'{out_mode!r}.')
        self.out_mode = out_mode
        self.pos_embed_resize = pos_embed_resize
        self.pad_to_patch = pad_to_patch
        out_indices = list(out_indices)
        if len(out_indices) != 4:
            raise ValueError(f'out_indices must name 4 blocks (one per '
                             f'stride 4/8/16/32), got {out_indices}.')
        # SelfPatchViT's order: arch, img_size, patch_size, out_indices,
        # drop_path_rate.
        super().__init__(arch, img_size, patch_size, out_indices,
                         drop_path_rate, init_cfg=init_cfg, **kwargs)
        resolved = sorted(self.out_indices)
        if list(self.out_indices) != resolved or \
                len(set(resolved)) != len(resolved):
            raise ValueError('out_indices must be increasing (shallow to '
                             f'deep), got {out_indices}.')
        self.dense_frozen_stages = frozen_stages
        if out_mode == 'pyramid':
            norm_cfg = self._resolve_norm_cfg(norm_cfg)
            for i, stride in enumerate(_OUT_STRIDES, 1):
                self.add_module(
                    f'fpn{i}',
                    self._make_resampler(patch_size, stride, norm_cfg))
        self._freeze()

    @staticmethod
    def _resolve_norm_cfg(norm_cfg: dict) -> dict:
        norm_cfg = copy.deepcopy(norm_cfg)
        if norm_cfg.get('type') == 'SyncBN' and not torch.cuda.is_available():
            print_log(
                'SelfPatchDenseViT: no CUDA device, using BN instead of '
                'SyncBN in the stride-4 upsampler.',
                logger='current')
            norm_cfg['type'] = 'BN'
        return norm_cfg

    def _make_norm(self, norm_cfg: dict) -> nn.Module:
        cfg = dict(norm_cfg)
        if cfg.get('type') in ('LN2d', 'mmpretrain.LN2d'):
            # Built directly: mmcv's build_norm_layer looks in the current
            # scope's registry, and mmdet's and mmseg's have no 'LN2d'.
            return LayerNorm2d(self.embed_dims, eps=cfg.get('eps', 1e-6))
        return build_norm_layer(cfg, self.embed_dims)[1]

    def _make_resampler(self, patch_size: int, stride: int,
                        norm_cfg: dict) -> nn.Module:
        """Map from stride ``patch_size`` to ``stride``."""
        C = self.embed_dims
        if stride * 4 == patch_size:
            return nn.Sequential(
                nn.ConvTranspose2d(C, C, kernel_size=2, stride=2),
                self._make_norm(norm_cfg), nn.GELU(),
                nn.ConvTranspose2d(C, C, kernel_size=2, stride=2))
        if stride * 2 == patch_size:
            return nn.ConvTranspose2d(C, C, kernel_size=2, stride=2)
        if stride == patch_size:
            return nn.Identity()
        if stride % patch_size == 0:
            k = stride // patch_size
            return nn.MaxPool2d(kernel_size=k, stride=k)
        raise ValueError(
            f'patch_size={patch_size} cannot give stride {stride}: use a '
            'patch size of 4, 8, 16 or 32.')

    # ------------------------------------------------------------------
    # frozen stages
    def _frozen_modules(self) -> List[nn.Module]:
        if self.dense_frozen_stages < 0:
            return []
        return [self.patch_embed, self.drop_after_pos, self.pre_norm,
                *self.layers[:self.dense_frozen_stages]]

    def _freeze(self) -> None:
        if self.dense_frozen_stages < 0:
            return
        self.pos_embed.requires_grad_(False)
        for m in self._frozen_modules():
            m.eval()
            m.requires_grad_(False)

    def train(self, mode: bool = True) -> 'SelfPatchDenseViT':
        """Set the mode; frozen stages stay in eval mode."""
        super().train(mode)
        if mode:
            for m in self._frozen_modules():
                m.eval()
        return self

    def _resize_pos_embed(self, pos_embed: torch.Tensor,
                          src_hw: Tuple[int, int],
                          dst_hw: Tuple[int, int]) -> torch.Tensor:
        """The formula named by ``pos_embed_resize``."""
        return POS_EMBED_RESIZE[self.pos_embed_resize](pos_embed, src_hw,
                                                       dst_hw)

    # ------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward.

        Args:
            x (Tensor): ``(B, 3, H, W)``, H and W multiples of the patch
                size (any size with ``pad_to_patch``).

        Returns:
            tuple[Tensor]: Four ``(B, C, H/s, W/s)`` maps, s = 4, 8, 16, 32
            (``'pyramid'``) or s = the patch size (``'patch_stride'``).
        """
        if self.pad_to_patch:
            p = self.patch_size
            x = nn.functional.pad(x,
                                  (0, -x.shape[-1] % p, 0, -x.shape[-2] % p))
        feats = super().forward(x)
        if self.out_mode == 'patch_stride':
            return tuple(feats)
        return tuple(
            getattr(self, f'fpn{i}')(f) for i, f in enumerate(feats, 1))
