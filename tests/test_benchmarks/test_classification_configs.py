"""The ImageNet classification configs and the ViT-B/16 pretraining config,
built without training: the settings they cite, the layer-wise learning
rates they give, and ViT-B's size (on the meta device: no weights)."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import selfpatch_mm.models  # noqa: F401

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'selfpatch'
BENCH = CONFIGS / 'benchmarks'
LINEAR = BENCH / 'linear_vit-small-p16_8xb128-coslr-100e_in1k.py'
FINETUNE = BENCH / 'vit-small-p16_8xb128-finetune-coslr-100e_in1k.py'
VIT_B = CONFIGS / 'selfpatch_vit-base-p16_16xb64-coslr-200e_in1k.py'
TINY_ARCH = dict(_delete_=True, embed_dims=96, num_layers=4, num_heads=3,
                 feedforward_channels=384)


def _build(cfg):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg.model)


def test_linear_config_is_dinos_protocol():
    cfg = Config.fromfile(str(LINEAR))
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == (
        'SGD', 0.004, 0.9, 0.0)  # 0.001 x 1024 / 256
    assert cfg.train_dataloader.batch_size * 8 == 1024
    assert cfg.train_cfg.max_epochs == 100
    (sched, ) = cfg.param_scheduler
    assert (sched.type, sched.T_max, sched.eta_min, sched.by_epoch) == (
        'CosineAnnealingLR', 100, 0.0, True)
    assert 'convert_to_iter_based' not in sched  # stepped per epoch
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert (crop.scale, crop.crop_ratio_range, crop.interpolation) == (
        224, (0.08, 1.0), 'bilinear')
    resize, centre = cfg.val_dataloader.dataset.pipeline[1:3]
    assert (resize.scale, resize.interpolation, centre.crop_size) == (
        256, 'bicubic', 224)
    cfg.model.backbone.init_cfg = None
    model = _build(cfg)
    model.train()
    assert model.backbone.out_indices == [8, 9, 10, 11]
    assert not model.backbone.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ['head.fc.weight', 'head.fc.bias']
    assert model.head.fc.in_features == 4 * 384


def test_finetune_config_layer_decay():
    """mmpretrain's rule: lr x 0.65 ** (L + 1 - depth), depth 0 for the
    embeddings, i + 1 for block i, L + 1 for the head and the last norm."""
    cfg = Config.fromfile(str(FINETUNE))
    assert cfg.model.train_cfg.augments == [
        dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]
    assert cfg.model.head.loss.label_smooth_val == 0.1
    assert cfg.model.backbone.drop_path_rate == 0.1
    cfg.model.backbone.init_cfg = None
    cfg.merge_from_dict({'model.backbone.arch': TINY_ARCH,
                         'model.backbone.img_size': 64,
                         'model.backbone.patch_size': 8,
                         'model.head.in_channels': 96})
    model = _build(cfg)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lr = {id(p): g['lr'] for g in wrapper.optimizer.param_groups
          for p in g['params']}
    wd = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups
          for p in g['params']}
    params = dict(model.named_parameters())
    base = 2e-3
    expect = {
        'backbone.pos_embed': base * 0.65**5,
        'backbone.patch_embed.projection.weight': base * 0.65**5,
        'backbone.layers.0.attn.qkv.weight': base * 0.65**4,
        'backbone.layers.3.ffn.layers.1.weight': base * 0.65**1,
        'backbone.ln2.weight': base,
        'head.fc.weight': base,
    }
    for name, value in expect.items():
        assert lr[id(params[name])] == pytest.approx(value, rel=1e-12), name
    assert wd[id(params['backbone.layers.0.attn.qkv.weight'])] == 0.05
    for name in ('backbone.pos_embed', 'backbone.layers.0.ln1.weight',
                 'backbone.layers.0.attn.qkv.bias', 'backbone.ln2.weight'):
        assert wd[id(params[name])] == 0.0, name


def test_vit_base_config_builds_vit_b16():
    cfg = Config.fromfile(str(VIT_B))
    assert cfg.train_dataloader.batch_size * 16 == 1024
    assert cfg.optim_wrapper.optimizer.lr * 1024 / \
        cfg.auto_scale_lr.base_batch_size == pytest.approx(0.002)
    assert cfg.model.head.norm_last_layer and \
        cfg.model.patch_head.norm_last_layer
    assert cfg.model.backbone.drop_path_rate == 0.1
    with torch.device('meta'):
        model = _build(cfg)
    vit = model.backbone
    assert (vit.embed_dims, vit.num_layers,
            vit.layers[0].attn.num_heads) == (768, 12, 12)
    # patch embedding 768 x 3 x 16 x 16 + 768, 196 positions, and per block
    # 2 LayerNorms, qkv, proj, fc1, fc2: no [CLS] token, no final norm
    block = 4 * 768 + (768 * 2304 + 2304) + (768 * 768 + 768) + \
        (768 * 3072 + 3072) + (3072 * 768 + 768)
    expected = 768 * 3 * 16 * 16 + 768 + 196 * 768 + 12 * block
    assert sum(p.numel() for p in vit.parameters()) == expected == 85795584
    assert model.neck.blocks[0].attn.q.in_features == 768
    assert model.head.mlp[0].in_features == 768
