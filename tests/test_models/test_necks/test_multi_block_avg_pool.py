"""MultiBlockAvgPool: each block's mean patch token, concatenated in block
order (the linear-evaluation feature of a ViT without [CLS] token)."""
import pytest
import torch

from selfpatch_mm.models import MultiBlockAvgPool


def test_means_concatenated_in_order():
    a = torch.arange(8.).reshape(1, 2, 2, 2)  # (B, C, H, W)
    b = torch.full((1, 3, 2, 2), 5.)
    (out, ) = MultiBlockAvgPool()((a, b))
    assert torch.equal(out, torch.tensor([[1.5, 5.5, 5., 5., 5.]]))


def test_token_sequences_too():
    tokens = torch.tensor([[[1., 2.], [3., 6.]]])  # (B, N, C)
    (out, ) = MultiBlockAvgPool()([tokens])
    assert torch.equal(out, torch.tensor([[2., 4.]]))


def test_rejects_a_bare_tensor():
    with pytest.raises(TypeError, match='tuple of feature maps'):
        MultiBlockAvgPool()(torch.zeros(1, 2, 2, 2))
