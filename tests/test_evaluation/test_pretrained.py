"""Loading a pretraining checkpoint for the analysis tools."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import selfpatch_mm.models  # noqa: F401
from selfpatch_mm.evaluation import load_pretrained_selfpatch

DEMO = 'configs/selfpatch/selfpatch_vit-tiny-p8_1xb8-2e_demo.py'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    # in mmpretrain's scope, whatever scope an earlier test's Runner left
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(Config.fromfile(DEMO).model)
    model.init_weights()
    model.update_teacher(0.5)
    with torch.no_grad():  # make teacher and student differ
        for p in model.teacher.parameters():
            p.add_(1.0)
    path = tmp_path_factory.mktemp('ckpt') / 'demo.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path, model


@pytest.mark.parametrize('key', ['teacher', 'student'])
def test_loads_the_selected_weights(checkpoint, key):
    path, model = checkpoint
    loaded = load_pretrained_selfpatch(DEMO, str(path), key=key, device='cpu')
    src = model.teacher if key == 'teacher' else model
    for name in ('backbone', 'neck'):
        ours = getattr(loaded, name).state_dict()
        for k, v in getattr(src, name).state_dict().items():
            assert torch.equal(ours[k], v), (name, k)
    assert loaded.patch_size == 8 and not loaded.backbone.training


def test_backbone_only_file_has_no_neck(checkpoint, tmp_path):
    path, model = checkpoint
    backbone_only = tmp_path / 'backbone.pth'
    torch.save({'state_dict': model.teacher.backbone.state_dict()},
               backbone_only)
    loaded = load_pretrained_selfpatch(DEMO, str(backbone_only), device='cpu')
    assert loaded.neck is None


def test_file_without_backbone_names_its_prefixes(tmp_path):
    bad = tmp_path / 'heads.pth'
    torch.save({'state_dict': {'head.mlp.0.weight': torch.zeros(1)}}, bad)
    with pytest.raises(ValueError, match=r'heads\.pth.*head\.mlp'):
        load_pretrained_selfpatch(DEMO, str(bad), device='cpu')
