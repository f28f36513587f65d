# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""A real pretraining step on synthetic multi-crop input."""
from typing import List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import init_default_scope
from torch import nn

__all__ = ['crop_sizes', 'synthetic_batch', 'build_step', 'train_step']


def _find(pipeline, name: str) -> Optional[dict]:
    return next((t for t in pipeline or [] if t.get('type') == name), None)


def _multiview_sizes(mv: dict) -> List[Tuple[int, int]]:
    branches, counts = mv['transforms'], mv['num_views']
    if isinstance(counts, int):
        counts = [counts] * len(branches)
    if len(counts) != len(branches):
        raise ValueError(f'MultiView num_views={counts} does not match its '
                         f'{len(branches)} transform branches.')
    sizes = []
    for n, branch in zip(counts, branches):
        crop = next((t for t in branch
                     if 'RandomResizedCrop' in str(t.get('type'))), None)
        if crop is None:
            raise ValueError('A MultiView branch has no RandomResizedCrop: '
                             f'{branch!r}. Cannot infer its crop size.')
        scale = crop['scale']
        hw = (scale, scale) if isinstance(scale, int) else tuple(scale)
        sizes += [tuple(int(s) for s in hw)] * int(n)
    return sizes


def crop_sizes(cfg: Config) -> List[Tuple[int, int]]:
    """``(H, W)`` of every view, in the order the pipeline makes them.

    Raises:
        ValueError: The config has neither a ``DINOMultiCrop`` nor a
            ``MultiView`` transform with a ``RandomResizedCrop`` in each
            branch.
    """
    from selfpatch_mm.datasets import DINOMultiCrop
    pipeline = cfg.get('train_dataloader', {}).get('dataset', {}).get(
        'pipeline') or cfg.get('train_pipeline')
    multicrop = _find(pipeline, 'DINOMultiCrop')
    if multicrop is not None:
        kwargs = {k: v for k, v in multicrop.items() if k != 'type'}
        return DINOMultiCrop(**kwargs).view_sizes
    mv = _find(pipeline, 'MultiView')
    if mv is None:
        raise ValueError(
            'No DINOMultiCrop or MultiView transform in '
            'train_dataloader.dataset.pipeline (or train_pipeline) of the '
            'config: cannot infer the crops. The benchmark needs a '
            'multi-crop pretraining config.')
    return _multiview_sizes(mv)


def synthetic_batch(sizes: List[Tuple[int, int]], batch_size: int,
                    channels_last: bool = False) -> dict:
    """A collated multi-view uint8 batch as the dataloader gives it."""
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    views = []
    for h, w in sizes:
        v = torch.randint(0, 256, (batch_size, 3, h, w), generator=g,
                          dtype=torch.uint8)
        if channels_last:
            v = v.contiguous(memory_format=torch.channels_last)
        views.append(v)
    return dict(inputs=views,
                data_samples=[DataSample() for _ in range(batch_size)])


def _python_attention(model: nn.Module) -> None:
    """The official (timm) attention, ``softmax(q k^T / sqrt(d)) v`` in
    plain ops, in every backbone block: what SDPA's fused kernels buy."""
    from mmpretrain.models.utils.attention import (
        MultiheadAttention, scaled_dot_product_attention_pyimpl)
    for m in model.modules():
        if isinstance(m, MultiheadAttention):
            m.scaled_dot_product_attention = \
                scaled_dot_product_attention_pyimpl


def build_step(cfg: Config,
               device: str = 'cpu',
               amp: Optional[str] = None,
               no_patch: bool = False,
               fused_adamw: bool = False,
               sdpa: bool = True,
               compile_model: bool = False,
               compile_losses: bool = False
               ) -> Tuple[nn.Module, OptimWrapper]:
    """The config's model (train mode) and optimizer wrapper, as training
    builds them, with the benchmark's switches.

    Args:
        cfg (Config): A pretraining config.
        device (str): ``'cpu'`` or ``'cuda'``.
        amp (str, optional): ``'fp16'``/``'bf16'``: the AMP wrapper
            (``SelfPatchAmpOptimWrapper``); None: fp32.
        no_patch (bool): The DINO ablation (patch branch off).
        fused_adamw (bool): ``AdamW(fused=True)`` (one kernel for all
            parameters) instead of torch's default (foreach on CUDA).
        sdpa (bool): False swaps the backbone's fused attention for the
            official plain-ops attention.
        compile_model (bool): ``torch.compile`` the student's and the
            teacher's parts as training's ``CompileHook`` does
            (``model.compile_parts``).
        compile_losses (bool): With ``compile_model``, the loss modules
            too.

    Returns:
        tuple: ``(model, optim_wrapper)``.
    """
    from mmpretrain.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    if no_patch:
        cfg.model.with_patch_loss = False
        cfg.model.patch_head = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device).train()
    if not sdpa:
        _python_attention(model)
    ow_cfg = cfg.optim_wrapper.copy()
    ow_cfg.pop('loss_scale', None)
    ow_cfg.pop('dtype', None)
    if amp:
        ow_cfg.update(type='SelfPatchAmpOptimWrapper',
                      dtype={'fp16': 'float16', 'bf16': 'bfloat16'}[amp])
    else:
        ow_cfg['type'] = 'SelfPatchOptimWrapper'
    if fused_adamw:
        ow_cfg['optimizer'] = dict(ow_cfg['optimizer'], fused=True)
    optim_wrapper = build_optim_wrapper(model, ow_cfg)
    if compile_model:
        model.compile_parts(losses=compile_losses)
    return model, optim_wrapper


def train_step(model: nn.Module, optim_wrapper: OptimWrapper,
               data: dict) -> None:
    """One real iteration: what the Runner's loop and TeacherEMAHook do
    (the data preprocessor, the losses under the wrapper's autocast, the
    update, the EMA)."""
    model.train_step(data, optim_wrapper)
    model.update_teacher(0.996)
