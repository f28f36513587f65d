"""Parity of the projection head with the official ``DINOHead``.

Reference: alinlab/SelfPatch@81aef14, selfpatch_vision_transformer.py,
``DINOHead`` (3-layer MLP with GELU, L2 normalisation, ``weight_norm`` last
layer with ``weight_g`` filled with 1), re-written below with the legacy
``torch.nn.utils.weight_norm`` API the official code uses.
"""
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from selfpatch_mm.models.heads import DINOHead


def official_head(in_dim, out_dim, hidden=2048, bottleneck=256):
    mlp = nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden),
        nn.GELU(), nn.Linear(hidden, bottleneck))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        last = nn.utils.weight_norm(
            nn.Linear(bottleneck, out_dim, bias=False))
    last.weight_g.data.fill_(1)
    return mlp, last


def test_head_matches_official():
    torch.manual_seed(0)
    head = DINOHead(16, 64, hidden_channels=24, bottleneck_channels=8)
    head.init_weights()
    mlp, last = official_head(16, 64, 24, 8)
    mlp.load_state_dict(head.mlp.state_dict())
    pw = head.last_layer.parametrizations.weight
    last.weight_v.data.copy_(pw.original1)
    last.weight_g.data.copy_(pw.original0)
    x = torch.randn(5, 7, 16)
    expected = last(F.normalize(mlp(x), dim=-1, p=2))
    torch.testing.assert_close(head(x), expected)


def test_last_layer_rows_have_unit_norm_and_frozen_magnitude():
    head = DINOHead(16, 64, hidden_channels=24, bottleneck_channels=8)
    g = head.last_layer.parametrizations.weight.original0
    assert torch.all(g == 1) and not g.requires_grad
    w = head.last_layer.weight
    torch.testing.assert_close(w.norm(dim=1), torch.ones(64))
    free = DINOHead(16, 64, hidden_channels=24, bottleneck_channels=8,
                    norm_last_layer=False)
    assert free.last_layer.parametrizations.weight.original0.requires_grad


def test_paper_sizes():
    head = DINOHead(384, 4096)
    dims = [m.out_features for m in head.mlp if isinstance(m, nn.Linear)]
    assert dims == [2048, 2048, 256]
    assert head.last_layer.weight.shape == (4096, 256)
    assert head.loss_module is None


def test_fp32_last_layer_under_bf16_autocast():
    """``fp32_last_layer``: under autocast the prototype logits are the fp32
    product of the (bf16-computed, normalised) bottleneck features with the
    fp32 weight; by default (as officially) the layer runs in bf16."""
    torch.manual_seed(0)
    head = DINOHead(16, 64, hidden_channels=24, bottleneck_channels=8)
    head.init_weights()
    x = torch.randn(5, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        default = head(x)
        head.fp32_last_layer = True
        exact = head(x)
        feats = F.normalize(head.mlp(x), dim=-1, p=2)
    assert default.dtype == torch.bfloat16 and exact.dtype == torch.float32
    expected = feats.float() @ head.last_layer.weight.t()
    torch.testing.assert_close(exact, expected)
    # the bf16 layer rounds the logits: about 2^-8 relative
    assert (default.float() - expected).abs().max() > 1e-4
