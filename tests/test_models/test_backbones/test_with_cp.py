"""Activation checkpointing (``with_cp``) of the SelfPatch ViT: the same
outputs and gradients as without it, drop path included."""
import pytest
import torch

from selfpatch_mm.models import SelfPatchDenseViT, SelfPatchViT

ARCH = dict(embed_dims=48, num_layers=4, num_heads=3,
            feedforward_channels=96)


def _grads(model_cls, with_cp, x, **kwargs):
    torch.manual_seed(0)
    model = model_cls(arch=ARCH, img_size=32, patch_size=8,
                      drop_path_rate=0.3, with_cp=with_cp, **kwargs)
    model.train()
    torch.manual_seed(1)  # the same drop-path draws in both runs
    outs = model(x)
    loss = sum((o * torch.arange(o.numel()).view_as(o).sin()).sum()
               for o in outs)
    loss.backward()
    return outs, {n: p.grad for n, p in model.named_parameters()
                  if p.grad is not None}


@pytest.mark.parametrize('model_cls,kwargs', [
    (SelfPatchViT, dict(out_indices=(1, 2))),
    (SelfPatchDenseViT, dict(out_indices=(0, 1, 2, 3),
                             norm_cfg=dict(type='BN'))),
])
def test_with_cp_gives_the_same_gradients(model_cls, kwargs):
    x = torch.randn(2, 3, 32, 40)
    outs, grads = _grads(model_cls, False, x, **kwargs)
    outs_cp, grads_cp = _grads(model_cls, True, x, **kwargs)
    for a, b in zip(outs, outs_cp):
        assert torch.equal(a, b)
    assert sorted(grads) == sorted(grads_cp)
    assert 'layers.0.attn.qkv.weight' in grads
    for name in grads:
        torch.testing.assert_close(grads_cp[name], grads[name], rtol=0,
                                   atol=0, msg=name)


def test_with_cp_checkpoints_only_with_autograd(monkeypatch):
    calls = []
    import torch.utils.checkpoint as cp
    real = cp.checkpoint
    monkeypatch.setattr(cp, 'checkpoint',
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    model = SelfPatchViT(arch=ARCH, img_size=32, patch_size=8, with_cp=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        model(x)
    assert calls == []
    model(x)
    assert len(calls) == ARCH['num_layers']
