"""SelfPatchViT: official position-embedding interpolation, shapes, errors.

Reference: alinlab/SelfPatch@81aef14, selfpatch_vision_transformer.py,
``VisionTransformer.interpolate_pos_encoding`` (bicubic with a scale factor
of ``(w0 + 0.1) / sqrt(N)``).
"""
import math

import pytest
import torch
from torch import nn

from selfpatch_mm.models.backbones import SelfPatchViT, interpolate_pos_embed

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def official_interpolate(pos_embed, w, h, patch_size):
    N, dim = pos_embed.shape[1], pos_embed.shape[-1]
    w0, h0 = w // patch_size + 0.1, h // patch_size + 0.1
    out = nn.functional.interpolate(
        pos_embed.reshape(1, int(math.sqrt(N)), int(math.sqrt(N)),
                          dim).permute(0, 3, 1, 2),
        scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)),
        mode='bicubic')
    return out.permute(0, 2, 3, 1).view(1, -1, dim)


@pytest.mark.parametrize('size', [(96, 96), (224, 160), (64, 48)])
def test_pos_embed_interpolation_matches_official(size):
    pos = torch.randn(1, 196, 8)
    ours = interpolate_pos_embed(pos, (14, 14), (size[0] // 16,
                                                 size[1] // 16))
    torch.testing.assert_close(ours, official_interpolate(pos, *size, 16))


def test_outputs_and_no_cls_token():
    vit = SelfPatchViT(arch=ARCH, img_size=64, patch_size=16)
    vit.init_weights()
    assert vit.cls_token is None and vit.pos_embed.shape == (1, 16, 32)
    assert vit(torch.randn(2, 3, 224, 160))[0].shape == (2, 32, 14, 10)
    attn = vit.get_last_selfattention(torch.randn(1, 3, 32, 48))
    assert attn.shape == (1, 2, 6, 6)
    torch.testing.assert_close(attn.sum(-1), torch.ones(1, 2, 6))


def test_deit_small_is_vit_s():
    vit = SelfPatchViT(arch='deit-small')
    assert (vit.embed_dims, vit.num_layers) == (384, 12)
    assert vit.layers[0].attn.num_heads == 6


def test_indivisible_input_raises_clear_error():
    vit = SelfPatchViT(arch=ARCH, img_size=64, patch_size=16)
    with pytest.raises(ValueError, match='not divisible by patch_size=16'):
        vit(torch.randn(1, 3, 100, 96))


def test_drop_path_rates_are_python_floats():
    """mmpretrain spaces the rates with np.linspace; as numpy floats they
    broke torch.compile's graph in every block. Same rates, as floats."""
    import numpy as np
    vit = SelfPatchViT(arch=dict(embed_dims=32, num_layers=3, num_heads=2,
                                 feedforward_channels=64),
                       img_size=32, patch_size=8, drop_path_rate=0.1)
    rates = [m.drop_prob for m in vit.modules() if hasattr(m, 'drop_prob')]
    assert rates and all(type(r) is float for r in rates)
    assert sorted(set(rates)) == pytest.approx(
        list(np.linspace(0, 0.1, 3)))
