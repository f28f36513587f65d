"""Converters: official SelfPatch/DINO files -> selfpatch_mm -> backbone.

The official files are fabricated here with the demo model's tiny sizes and
the official key names (alinlab/SelfPatch ``main_selfpatch.py``)."""
import contextlib
import io
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from selfpatch_mm.models import SelfPatchDenseViT

# --import-mode=importlib puts no test folder on sys.path
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from converter_helpers import (C, LAYERS, TOOLS,  # noqa: E402
                               load_tool, official_checkpoint, official_vit)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CFG = osp.join(REPO, 'configs/selfpatch',
                    'selfpatch_vit-tiny-p8_1xb8-2e_demo.py')


@pytest.fixture(scope='module')
def official_full(tmp_path_factory):
    ckpt = official_checkpoint()
    path = str(tmp_path_factory.mktemp('official') / 'checkpoint.pth')
    torch.save(ckpt, path)
    return path, ckpt


@pytest.fixture(scope='module')
def converted(official_full, tmp_path_factory):
    """The full official file through the converter's command line (its
    ``main(argv)``, in-process: nothing here needs a fresh process)."""
    src, _ = official_full
    dst = str(tmp_path_factory.mktemp('mm') / 'selfpatch_mm.pth')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        load_tool('official_to_mm').main([src, dst])
    assert 'full SelfPatch model' in out.getvalue()
    return dst


def test_full_checkpoint_loads_strictly_into_selfpatch(official_full,
                                                       converted):
    _, official = official_full
    state = torch.load(converted, weights_only=True)['state_dict']
    model = MODELS.build(Config.fromfile(DEMO_CFG).model)
    model.load_state_dict(state, strict=True)
    stu, tea = official['student'], official['teacher']
    torch.testing.assert_close(model.backbone.layers[2].ffn.layers[1].weight,
                               stu['module.backbone.blocks.2.mlp.fc2.weight'])
    torch.testing.assert_close(
        model.teacher.backbone.patch_embed.projection.weight,
        tea['backbone.patch_embed.proj.weight'])
    torch.testing.assert_close(model.teacher.neck.blocks[1].attn.k.bias,
                               tea['ca_head.cls_blocks.1.attn.k.bias'])
    torch.testing.assert_close(model.neck.cls_token,
                               stu['module.ca_head.cls_token'])
    torch.testing.assert_close(
        model.patch_head.last_layer.parametrizations.weight.original0,
        stu['module.p_head.last_layer.weight_g'])
    torch.testing.assert_close(
        model.teacher.head.last_layer.parametrizations.weight.original1,
        tea['c_head.last_layer.weight_v'])
    torch.testing.assert_close(model.head.loss_module.center,
                               official['dino_loss']['center'][0])
    torch.testing.assert_close(model.patch_head.loss_module.center,
                               official['dino_loss']['patch_center'])


@pytest.mark.parametrize('key', ['teacher', 'student'])
def test_round_trip_to_backbone(official_full, converted, tmp_path, key):
    """official -> ours -> backbone-only gives the official tensors."""
    _, official = official_full
    out = str(tmp_path / f'{key}_vit.pth')
    load_tool('extract_backbone').main([converted, out, '--key', key])
    vit = torch.load(out, weights_only=True)
    assert vit['meta']['network'] == key
    vit = vit['state_dict']
    src = official[key]
    pre = 'module.backbone.' if key == 'student' else 'backbone.'
    pairs = {'pos_embed': 'pos_embed',
             'patch_embed.projection.bias': 'patch_embed.proj.bias'}
    for i in range(LAYERS):
        for ours, theirs in (('ln1', 'norm1'), ('attn.qkv', 'attn.qkv'),
                             ('attn.proj', 'attn.proj'), ('ln2', 'norm2'),
                             ('ffn.layers.0.0', 'mlp.fc1'),
                             ('ffn.layers.1', 'mlp.fc2')):
            for p in ('weight', 'bias'):
                pairs[f'layers.{i}.{ours}.{p}'] = f'blocks.{i}.{theirs}.{p}'
    assert len(vit) == len(pairs) + 1  # + patch_embed.projection.weight
    for ours, theirs in pairs.items():
        assert torch.equal(vit[ours], src[pre + theirs]), ours
    # and the dense backbone takes both the backbone file and the full one
    for path in (out, converted):
        dense = SelfPatchDenseViT(
            arch=dict(embed_dims=C, num_layers=LAYERS, num_heads=3,
                      feedforward_channels=4 * C),
            img_size=64, patch_size=8, out_indices=(0, 1, 2, 3),
            norm_cfg=dict(type='BN'))
        info = dense.load_pretrained(path, checkpoint_key=key)
        assert info == dict(missing=[], unexpected=[])
        assert torch.equal(dense.layers[3].ln2.bias,
                           src[pre + 'blocks.3.norm2.bias'])


def test_dino_style_backbone(tmp_path):
    """Backbone-only DINO state dict inside `teacher`, with a [CLS] position,
    cls_token and final norm (dropped: the SelfPatch ViT has none)."""
    vit = official_vit(cls_pos=True)
    vit.update({'cls_token': torch.randn(1, 1, C), 'norm.weight':
                torch.ones(C), 'norm.bias': torch.zeros(C)})
    src = str(tmp_path / 'dino.pth')
    torch.save({'teacher': {f'backbone.{k}': v for k, v in vit.items()}},
               src)
    out = str(tmp_path / 'vit.pth')
    load_tool('official_to_mm').main([src, out])
    ckpt = torch.load(out, weights_only=True)
    assert ckpt['meta']['layout'] == 'official_backbone'
    state = ckpt['state_dict']
    assert torch.equal(state['pos_embed'], vit['pos_embed'][:, 1:])
    assert torch.equal(state['layers.1.attn.qkv.weight'],
                       vit['blocks.1.attn.qkv.weight'])
    assert not any(k.startswith(('norm', 'cls_token')) for k in state)


def test_unknown_layout_error(tmp_path):
    src = str(tmp_path / 'resnet.pth')
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1),
                               'layer1.0.bn1.weight': torch.zeros(1)}}, src)
    with pytest.raises(SystemExit, match=r'resnet\.pth: Unknown checkpoint '
                       r'layout.*conv1\(1\), layer1\(1\)'):
        load_tool('official_to_mm').main([src, str(tmp_path / 'x.pth')])
