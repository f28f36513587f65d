"""ADE20K fidelity to the official segmentation code
(alinlab/SelfPatch ``segmentation/backbones/vit_SelfPatch.py`` and
``segmentation/configs/semfpn_vit-s16_512x512_40k_ade20k.py``): the
position-embedding resize, the padding of test images, and the configs."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from selfpatch_mm.checkpoint.pos_embed import (interpolate_pos_embed,
                                               resize_pos_embed_mmseg)
from selfpatch_mm.models.backbones import SelfPatchDenseViT, SelfPatchViT

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH = REPO_ROOT / 'configs' / 'selfpatch' / 'benchmarks'
ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)


def official_resize_pos_embed(pos_embed, input_shpae, pos_shape, mode):
    """``SelfPatch_ViT.resize_pos_embed`` of the official segmentation
    backbone (mmseg 0.x's ``resize`` is ``F.interpolate``)."""
    pos_h, pos_w = pos_shape
    pos_embed_weight = pos_embed.reshape(1, pos_h, pos_w,
                                         pos_embed.shape[2]).permute(
                                             0, 3, 1, 2)
    pos_embed_weight = F.interpolate(
        pos_embed_weight, size=input_shpae, align_corners=False, mode=mode)
    return torch.flatten(pos_embed_weight, 2).transpose(1, 2)


def _table(n=14, c=384, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, n * n, c, generator=gen) * 0.02


def test_resize_equals_official_14_to_32():
    pos = _table()
    ours = resize_pos_embed_mmseg(pos, (14, 14), (32, 32))
    official = official_resize_pos_embed(pos, (32, 32), (14, 14), 'bicubic')
    assert (ours - official).abs().max() < 1e-6
    # The pretraining (DINO) formula is another table: a few percent off.
    dino = interpolate_pos_embed(pos, (14, 14), (32, 32))
    assert (dino - official).norm() / official.norm() > 0.01


def test_dense_backbone_loads_and_runs_with_the_official_resize(tmp_path):
    """A 224-px pretraining table loaded into the 512-px ADE20K backbone,
    then resized again for a 512x688 test image, both as officially."""
    vit = SelfPatchViT(arch=ARCH, img_size=224, patch_size=16)
    vit.init_weights()
    ckpt = tmp_path / 'pretrain.pth'
    torch.save(
        dict(state_dict={f'teacher.backbone.{k}': v
                         for k, v in vit.state_dict().items()}), ckpt)
    dense = SelfPatchDenseViT(
        arch=ARCH, img_size=512, patch_size=16, out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN'), pos_embed_resize='mmseg',
        pad_to_patch=True)
    dense.load_pretrained(str(ckpt))
    official = official_resize_pos_embed(vit.pos_embed, (32, 32), (14, 14),
                                         'bicubic')
    assert (dense.pos_embed - official).abs().max() < 1e-6
    test_grid = official_resize_pos_embed(dense.pos_embed, (32, 43),
                                          (32, 32), 'bicubic')
    ours = dense._resize_pos_embed(dense.pos_embed, (32, 32), (32, 43))
    assert (ours - test_grid).abs().max() < 1e-6


def test_pad_to_patch_is_official_corner_padding():
    """Zeros at the bottom and right up to a multiple of the patch size
    (mmseg 0.x ``PatchEmbed(padding='corner')``), inside the backbone."""
    torch.manual_seed(0)
    kwargs = dict(arch=ARCH, img_size=64, patch_size=16,
                  out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'))
    padded = SelfPatchDenseViT(pad_to_patch=True, **kwargs).eval()
    plain = SelfPatchDenseViT(**kwargs).eval()
    plain.load_state_dict(padded.state_dict())
    x = torch.randn(1, 3, 40, 70)
    with torch.no_grad():
        ours = padded(x)
        reference = plain(F.pad(x, (0, 10, 0, 8)))  # to 48 x 80
    assert ours[2].shape == (1, 32, 3, 5)
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match='not divisible'):
        plain(x)


@pytest.mark.parametrize('name', [
    'fpn_vit-small-p16_8xb4-40k_ade20k-512x512.py',
    'upernet_vit-small-p16_8xb2-160k_ade20k-512x512.py'
])
def test_ade20k_configs_follow_the_official_code(name):
    cfg = Config.fromfile(str(BENCH / name))
    backbone = cfg.model.backbone
    assert backbone.pos_embed_resize == 'mmseg' and backbone.pad_to_patch
    # training crops padded to 512 (official Pad); no test-time padding in
    # the preprocessor (the backbone pads, the prediction is resized)
    assert tuple(cfg.model.data_preprocessor.size) == (512, 512)
    assert 'test_cfg' not in cfg.model.data_preprocessor
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert 'norm_decay_mult' not in paramwise
    assert paramwise.custom_keys.pos_embed.decay_mult == 0.0
