"""Exporters: selfpatch_mm -> the authors' layout and -> timm.

The authors' files are fabricated with the demo model's sizes
(converter_helpers.py); timm (optional) builds the exported folder."""
import json
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from selfpatch_mm.checkpoint import load_checkpoint_file
from selfpatch_mm.models import SelfPatchViT

# --import-mode=importlib puts no test folder on sys.path
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from converter_helpers import (C, LAYERS, load_tool,  # noqa: E402
                               official_checkpoint)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CFG = osp.join(REPO, 'configs/selfpatch',
                    'selfpatch_vit-tiny-p8_1xb8-2e_demo.py')


def tool(name):
    return load_tool(name).main


def assert_same_tensors(a, b, where=''):
    """Same keys, tensors equal bit for bit (same dtype and shape); the
    order is not part of a state dict (.safetensors stores keys sorted)."""
    assert sorted(a) == sorted(b), where
    for k in a:
        if isinstance(a[k], dict):
            assert_same_tensors(a[k], b[k], f'{where}{k}.')
        else:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape \
                and torch.equal(a[k], b[k]), \
                where + k


@pytest.fixture
def official_file(tmp_path):
    torch.manual_seed(0)
    ckpt = official_checkpoint()
    path = str(tmp_path / 'checkpoint.pth')
    torch.save(ckpt, path)
    return path, ckpt


@pytest.mark.parametrize('mid', ['mm.pth', 'mm.safetensors'])
def test_official_round_trip_is_bit_identical(official_file, tmp_path, mid):
    src, official = official_file
    mm, back = str(tmp_path / mid), str(tmp_path / 'back.pth')
    tool('official_to_mm')([src, mm])
    tool('mm_to_official')([mm, back])
    out = torch.load(back, weights_only=True)
    assert sorted(out) == ['dino_loss', 'epoch', 'student', 'teacher']
    assert out['epoch'] == official['epoch']
    for key in ('student', 'teacher', 'dino_loss'):
        assert_same_tensors(out[key], official[key], key + '.')


def test_our_checkpoint_to_official_and_back(tmp_path):
    """A model of ours (demo config) -> official -> ours: the same state
    dict, loaded strictly; the official file has the authors' names."""
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(DEMO_CFG).model)
    state = model.state_dict()
    src, off, back = (str(tmp_path / n)
                      for n in ('ours.pth', 'off.pth', 'back.pth'))
    torch.save({'state_dict': state, 'meta': {'epoch': 7}}, src)
    tool('mm_to_official')([src, off])
    official = torch.load(off, weights_only=True)
    assert official['epoch'] == 7
    assert torch.equal(official['student']['module.ca_head.cls_token'],
                       state['neck.cls_token'])
    assert torch.equal(
        official['teacher']['backbone.blocks.3.mlp.fc2.weight'],
        state['teacher.backbone.layers.3.ffn.layers.1.weight'])
    assert torch.equal(official['teacher']['p_head.last_layer.weight_g'],
                       state['teacher.patch_head.last_layer.'
                             'parametrizations.weight.original0'])
    assert official['dino_loss']['center'].shape == (1, 1, 1024)
    tool('official_to_mm')([off, back])
    model.load_state_dict(torch.load(back, weights_only=True)['state_dict'],
                          strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_mm_to_official_refuses_backbone_only(tmp_path):
    src = str(tmp_path / 'vit.pth')
    torch.save({'state_dict': SelfPatchViT(
        arch=dict(embed_dims=C, num_layers=1, num_heads=3,
                  feedforward_channels=4 * C),
        img_size=64, patch_size=8).state_dict()}, src)
    with pytest.raises(SystemExit, match=r'vit\.pth: .*Not a full SelfPatch '
                       r'checkpoint.*teacher'):
        tool('mm_to_official')([src, str(tmp_path / 'out.pth')])


def _timm_model(folder, via):
    timm = pytest.importorskip('timm')
    if via == 'local-dir':
        return timm.create_model(f'local-dir:{folder}', pretrained=True)
    with open(osp.join(folder, 'config.json')) as f:
        cfg = json.load(f)
    return timm.create_model(
        cfg['architecture'], pretrained=True,
        pretrained_cfg_overlay=dict(file=osp.join(folder,
                                                  'model.safetensors')),
        **cfg['model_args'])


def _rel_diff(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize('key', ['teacher', 'student'])
def test_timm_export_matches_our_backbone(official_file, tmp_path,
                                          monkeypatch, key):
    """official -> ours -> timm: forward_features equals our backbone's
    tokens (the network of the converted checkpoint, in our model)."""
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    src, _ = official_file
    mm = str(tmp_path / 'mm.safetensors')
    tool('official_to_mm')([src, mm])
    folder = str(tmp_path / 'timm')
    tool('mm_to_timm')([mm, folder, '--key', key, '--num-heads', '3'])
    model = MODELS.build(Config.fromfile(DEMO_CFG).model)
    state = load_checkpoint_file(mm)['state_dict']
    model.load_state_dict(state, strict=True)
    model.eval()
    ours = (model.teacher if key == 'teacher' else model).backbone
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = ours(x)[-1].flatten(2).transpose(1, 2)  # (B, 64, C)
        for via in ('overlay', 'local-dir'):
            timm_vit = _timm_model(folder, via).eval()
            got = timm_vit.forward_features(x)
            assert got.shape == (2, 64, C)
            assert _rel_diff(got, expected) < 1e-5, via
            # forward pools the tokens: their mean, no norm
            assert _rel_diff(timm_vit(x), expected.mean(1)) < 1e-5
            if via == 'local-dir':  # config.json's preprocessing: ImageNet's
                data_cfg = pytest.importorskip('timm').data \
                    .resolve_data_config({}, model=timm_vit)
                assert tuple(data_cfg['mean']) == (0.485, 0.456, 0.406)
                assert tuple(data_cfg['std']) == (0.229, 0.224, 0.225)
                assert tuple(data_cfg['input_size']) == (3, 64, 64)


def test_timm_export_from_official_file(official_file, tmp_path, monkeypatch):
    """The authors' file exports directly (converted on the fly), and the
    timm model holds the authors' teacher tensors."""
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    src, official = official_file
    folder = str(tmp_path / 'timm')
    tool('mm_to_timm')([src, folder, '--num-heads', '3'])
    timm_state = _timm_model(folder, 'overlay').state_dict()
    teacher = {k[len('backbone.'):]: v
               for k, v in official['teacher'].items()
               if k.startswith('backbone.')}
    assert sorted(timm_state) == sorted(teacher)
    for k, v in teacher.items():
        assert torch.equal(timm_state[k], v), k
    with open(osp.join(folder, 'config.json')) as f:
        args = json.load(f)['model_args']
    assert (args['depth'], args['embed_dim'], args['img_size'],
            args['class_token'], args['final_norm']) == (LAYERS, C, 64,
                                                         False, False)


def test_timm_export_dino_vit(tmp_path, monkeypatch):
    """A standard DINO ViT of ours ([CLS] token, final norm) exports with
    both: forward_features equals our tokens, [CLS] first."""
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    torch.manual_seed(0)
    vit = SelfPatchViT(arch=dict(embed_dims=C, num_layers=2, num_heads=3,
                                 feedforward_channels=4 * C),
                       img_size=64, patch_size=8, with_cls_token=True,
                       final_norm=True, out_type='raw')
    with torch.no_grad():  # random everywhere, the [CLS] token included
        for p in vit.parameters():
            p.normal_(0, 0.2)
    src = str(tmp_path / 'dino_vit.pth')
    torch.save({'state_dict': vit.state_dict()}, src)
    folder = str(tmp_path / 'timm')
    tool('mm_to_timm')([src, folder, '--num-heads', '3'])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got = _timm_model(folder, 'local-dir').eval().forward_features(x)
        vit.eval()
        expected = vit(x)[-1]
    assert got.shape == (2, 65, C)
    assert _rel_diff(got, expected) < 1e-5


def test_timm_export_refuses_its_source_and_existing_files(tmp_path):
    folder = tmp_path / 'timm'
    folder.mkdir()
    src = folder / 'model.safetensors'
    vit = SelfPatchViT(arch=dict(embed_dims=C, num_layers=1, num_heads=3,
                                 feedforward_channels=4 * C),
                       img_size=64, patch_size=8)
    from safetensors.torch import save_file
    save_file(dict(vit.state_dict()), str(src))
    before = src.read_bytes()
    for extra in ([], ['--overwrite']):
        with pytest.raises(SystemExit, match='is the input file'):
            tool('mm_to_timm')([str(src), str(folder), '--num-heads', '3',
                                *extra])
    assert src.read_bytes() == before
    other = tmp_path / 'out'
    tool('mm_to_timm')([str(src), str(other), '--num-heads', '3'])
    with pytest.raises(SystemExit, match='already exists.*--overwrite'):
        tool('mm_to_timm')([str(src), str(other), '--num-heads', '3'])
    with pytest.raises(SystemExit, match='num_heads=5 does not divide'):
        tool('mm_to_timm')([str(src), str(tmp_path / 'o2'),
                            '--num-heads', '5'])
    with pytest.raises(SystemExit, match='pass --num-heads'):
        tool('mm_to_timm')([str(src), str(tmp_path / 'o3')])
