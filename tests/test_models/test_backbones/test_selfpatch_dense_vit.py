"""SelfPatchDenseViT: pyramid shapes, registries, frozen stages and loading
pretraining checkpoints (teacher / student / backbone-only)."""
import os.path as osp

import pytest
import torch
from helpers import TINY_DENSE_VIT as TINY
from mmengine.config import Config
from mmpretrain.registry import MODELS

from selfpatch_mm.models import SelfPatchDenseViT

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
DEMO_CFG = osp.join(REPO, 'configs/selfpatch/selfpatch_vit-tiny-p8_1xb8-2e_demo.py')


@pytest.fixture(scope='module')
def demo_ckpt(tmp_path_factory):
    """A pretraining checkpoint of the demo model, student != teacher."""
    model = MODELS.build(Config.fromfile(DEMO_CFG).model)
    model.init_weights()
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.0)
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_1.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1}}, path)
    return path, model


def vit_state(model):
    return {k: v for k, v in model.state_dict().items()
            if not k.startswith('fpn')}


def test_vit_small_strides():
    model = SelfPatchDenseViT(norm_cfg=dict(type='LN2d'))
    # stride-4 path of patch 16: deconv -> norm -> GELU -> deconv
    assert [type(m).__name__ for m in model.fpn1] == [
        'ConvTranspose2d', 'LayerNorm2d', 'GELU', 'ConvTranspose2d']
    assert type(model.fpn4).__name__ == 'MaxPool2d'
    with torch.no_grad():
        for hw in [(224, 224), (160, 288)]:  # square, padded non-square
            outs = model(torch.randn(1, 3, *hw))
            assert [tuple(o.shape) for o in outs] == [
                (1, 384, hw[0] // s, hw[1] // s) for s in (4, 8, 16, 32)]


def test_patch8_non_square_and_registries():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    # mmdet/mmseg configs reach mmpretrain's registry with the scope prefix
    assert DET.get('mmpretrain.SelfPatchDenseViT') is SelfPatchDenseViT
    assert SEG.get('mmpretrain.SelfPatchDenseViT') is SelfPatchDenseViT
    model = DET.build(dict(type='mmpretrain.SelfPatchDenseViT', **TINY))
    # mmdet pads to multiples of 32: a 96x128 batch has a 12x16 patch grid
    outs = model(torch.randn(2, 3, 96, 128))
    assert [tuple(o.shape[-2:]) for o in outs] == [(24, 32), (12, 16),
                                                   (6, 8), (3, 4)]
    with pytest.raises(ValueError, match='not divisible by patch_size'):
        model(torch.randn(1, 3, 60, 64))


def test_no_final_norm_block_outputs():
    """Outputs are the raw tokens of the chosen blocks (no final norm)."""
    model = SelfPatchDenseViT(**TINY)
    x = torch.randn(1, 3, 64, 64)
    plain = MODELS.build(dict(type='SelfPatchViT', arch=TINY['arch'],
                              img_size=64, patch_size=8,
                              out_indices=(0, 1, 2, 3)))
    model.eval()
    plain.eval()
    plain.load_state_dict(vit_state(model))
    ref = plain(x)
    outs = model(x)
    torch.testing.assert_close(outs[1], model.fpn2(ref[1]))
    torch.testing.assert_close(outs[2], torch.max_pool2d(ref[2], 2))


def test_frozen_stages():
    model = SelfPatchDenseViT(frozen_stages=2, drop_path_rate=0.1, **TINY)
    model.train()
    assert not model.pos_embed.requires_grad
    assert not any(p.requires_grad for p in model.layers[1].parameters())
    assert all(p.requires_grad for p in model.layers[2].parameters())
    assert not model.layers[1].training and model.layers[2].training


@pytest.mark.parametrize('key,prefix', [('teacher', 'teacher.backbone.'),
                                        ('student', 'backbone.')])
def test_every_vit_key_loads(demo_ckpt, key, prefix):
    path, _ = demo_ckpt
    state = torch.load(path, weights_only=True)['state_dict']
    model = SelfPatchDenseViT(
        init_cfg=dict(type='Pretrained', checkpoint=path,
                      checkpoint_key=key), **TINY)
    model.init_weights()
    own = vit_state(model)
    assert len(own) == 4 * 12 + 3
    for k, v in own.items():
        torch.testing.assert_close(v, state[prefix + k], msg=k)


def test_backbone_only_file_and_pos_resize(demo_ckpt, tmp_path):
    path, pretrain = demo_ckpt
    vit = {k: v for k, v in pretrain.teacher.backbone.state_dict().items()}
    only = str(tmp_path / 'vit.pth')
    torch.save({'state_dict': vit}, only)
    # a model stored for 128 px: the 8x8 grid is resized to 16x16
    model = SelfPatchDenseViT(
        init_cfg=dict(type='Pretrained', checkpoint=only),
        **dict(TINY, img_size=128))
    info = model.load_pretrained(only)
    assert info == dict(missing=[], unexpected=[])
    assert model.pos_embed.shape == (1, 256, 96)
    torch.testing.assert_close(model.layers[3].attn.qkv.weight,
                               vit['layers.3.attn.qkv.weight'])


def test_missing_and_unexpected_keys_reported(demo_ckpt, tmp_path):
    path, pretrain = demo_ckpt
    vit = dict(pretrain.teacher.backbone.state_dict())
    vit.pop('layers.0.ln1.weight')
    vit['layers.9.ln1.weight'] = torch.ones(96)
    part = str(tmp_path / 'part.pth')
    torch.save(vit, part)
    info = SelfPatchDenseViT(**TINY).load_pretrained(part)
    assert info == dict(missing=['layers.0.ln1.weight'],
                        unexpected=['layers.9.ln1.weight'])


def test_error_without_backbone(tmp_path):
    bad = str(tmp_path / 'heads_only.pth')
    torch.save({'state_dict': {'head.mlp.0.weight': torch.zeros(2, 2),
                               'neck.cls_token': torch.zeros(1, 1, 2)}}, bad)
    model = SelfPatchDenseViT(
        init_cfg=dict(type='Pretrained', checkpoint=bad), **TINY)
    with pytest.raises(ValueError, match=r'No usable ViT.*heads_only\.pth'
                       r'.*head\.mlp'):
        model.init_weights()


def test_error_on_arch_mismatch(demo_ckpt):
    path, _ = demo_ckpt
    model = SelfPatchDenseViT(**dict(TINY, patch_size=16))
    with pytest.raises(ValueError, match='patch_embed.projection.weight'):
        model.load_pretrained(path)


def _official_segmentation_forward(model, x):
    """The official segmentation backbone's forward, written from
    alinlab/SelfPatch ``segmentation/backbones/vit_SelfPatch.py``
    (``SelfPatch_ViT.forward``, lines 366-384, commit 81aef14): patch
    embedding, position embedding, then the raw tokens after each block of
    ``out_indices`` reshaped to ``(B, C, H/p, W/p)``; no resampling, no final
    norm."""
    tokens, hw = model.patch_embed(x)
    tokens = model.drop_after_pos(tokens + model.pos_embed)
    outs = []
    for i, layer in enumerate(model.layers):
        tokens = layer(tokens)
        if i in model.out_indices:
            b, _, c = tokens.shape
            outs.append(tokens.reshape(b, hw[0], hw[1], c).permute(0, 3, 1, 2))
    return outs


def test_patch_stride_mode_is_the_official_segmentation_backbone():
    model = SelfPatchDenseViT(out_mode='patch_stride',
                              **dict(TINY, out_indices=(0, 1, 2, 3)))
    # no resampling layers at all (nothing untrained between ViT and FPN)
    assert not any(n.startswith('fpn') for n, _ in model.named_modules())
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outs = model(x)
        ref = _official_segmentation_forward(model, x)
    assert [tuple(o.shape) for o in outs] == [(2, 96, 8, 8)] * 4
    for out, expected in zip(outs, ref):
        torch.testing.assert_close(out, expected)
    # the layer outputs really differ (four blocks, not one map four times)
    assert not torch.allclose(outs[0], outs[3])


def test_patch_stride_mode_loads_pyramid_checkpoints(demo_ckpt):
    """The ViT weights are the same in both modes: a pretraining checkpoint
    loads fully, and so does the pyramid model's state (its fpn keys are not
    the ViT's)."""
    path, _ = demo_ckpt
    model = SelfPatchDenseViT(out_mode='patch_stride', **TINY)
    report = model.load_pretrained(path)
    assert report == dict(missing=[], unexpected=[])
    with pytest.raises(ValueError, match="out_mode must be one of"):
        SelfPatchDenseViT(out_mode='stride16', **TINY)
