"""SelfPatchAmpOptimWrapper: fp16 with a GradScaler, bf16 without, on the
CPU as on CUDA; unscale before the per-parameter clipping; skipped steps
logged, not fatal; the scaler state resumes."""
import pytest
import torch
from mmengine.logging import MessageHub
from torch import nn

from selfpatch_mm.engine import (AutoAmpSelfPatchOptimWrapper,
                                 SelfPatchAmpOptimWrapper,
                                 SelfPatchOptimWrapper)


def _wrapper(dtype='float16', **kwargs):
    param = nn.Parameter(torch.zeros(4))
    wrapper = SelfPatchAmpOptimWrapper(
        optimizer=torch.optim.SGD([param], lr=1.0), dtype=dtype, **kwargs)
    return param, wrapper


def test_bf16_has_no_scaler_and_autocasts():
    param, wrapper = _wrapper('bf16')
    assert wrapper.loss_scaler is None and 'loss_scaler' not in \
        wrapper.state_dict()
    with wrapper.optim_context(nn.Linear(1, 1)):
        assert torch.is_autocast_enabled('cpu')
        assert torch.get_autocast_dtype('cpu') == torch.bfloat16


def test_fp16_unscales_before_per_param_clipping():
    # A gradient of norm 2 is under max_norm=3: it must reach SGD as it is.
    # Clipping the scaled gradient (norm 2 * 65536) would shrink it.
    param, wrapper = _wrapper(clip_grad=dict(type='per_param', max_norm=3.0))
    grad = torch.tensor([1., 1., 1., 1.])
    wrapper.update_params((param * grad).sum())
    assert wrapper.loss_scaler.get_scale() == 65536.0
    torch.testing.assert_close(param.detach(), -grad)


def test_fp16_skipped_step_is_logged_and_training_goes_on(caplog):
    param, wrapper = _wrapper()
    wrapper.update_params((param * float('inf')).sum())
    assert torch.equal(param.detach(), torch.zeros(4))  # step skipped
    assert wrapper.skipped_steps == 1
    assert wrapper.loss_scaler.get_scale() == 32768.0
    hub = MessageHub.get_current_instance()
    assert hub.get_scalar('train/amp_skipped_steps').current() == 1
    wrapper.update_params(param.sum())  # the next finite step applies
    torch.testing.assert_close(param.detach(), -torch.ones(4))


def test_scaler_state_round_trips():
    _, wrapper = _wrapper(loss_scale=dict(init_scale=1024.0))
    state = wrapper.state_dict()
    assert state['loss_scaler']['scale'] == 1024.0
    _, other = _wrapper()
    other.load_state_dict(state)
    assert other.loss_scaler.get_scale() == 1024.0


def test_rejects_fp32_dtype():
    with pytest.raises(ValueError, match='float32'):
        _wrapper('float32')


def test_auto_wrapper_is_fp32_without_cuda():
    if torch.cuda.is_available():
        pytest.skip('checks the CPU choice')
    wrapper = AutoAmpSelfPatchOptimWrapper(
        optimizer=torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1),
        dtype='bfloat16', loss_scale='dynamic')
    assert type(wrapper) is SelfPatchOptimWrapper
