"""CollapseMonitorHook's decisions on a fed message hub (no training; the
runs through tools/train.py are in tests/test_e2e/test_collapse_monitor.py).
"""
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest
from mmengine.logging import MessageHub

from selfpatch_mm.engine.hooks import CollapseMonitorHook


def _runner():
    loss = SimpleNamespace(teacher_temp=1.0, center_momentum=0.9,
                           center=MagicMock(shape=(1, 1024)))
    model = SimpleNamespace(head=SimpleNamespace(loss_module=loss),
                            patch_head=SimpleNamespace(loss_module=loss))
    optim = MagicMock()
    optim.get_lr.return_value = {'lr': [5e-4]}
    return SimpleNamespace(
        iter=0, hooks=[], model=model, optim_wrapper=optim,
        train_dataloader=SimpleNamespace(batch_size=8), logger=MagicMock(),
        message_hub=MessageHub(f'collapse_test_{id(model)}'))


def _feed(hook, runner, figures, iters):
    """Log ``figures`` (name: value, as the algorithm names them under
    ``health/``) for ``iters`` iterations, calling the hook after each."""
    for _ in range(iters):
        for name, value in figures.items():
            runner.message_hub.update_scalar(f'train/health/{name}', value)
        hook.after_train_iter(runner, batch_idx=runner.iter)
        runner.iter += 1


def _warnings(runner):
    return [c.args[0] for c in runner.logger.warning.call_args_list]


HEALTHY = {'cls_entropy_frac': 0.7, 'cls_perplexity': 400.0,
           'patch_entropy_frac': 0.6, 'patch_perplexity': 100.0}


def test_warns_once_per_head_after_warmup_and_patience():
    hook = CollapseMonitorHook(warmup_iters=4, patience=3, interval=2)
    runner = _runner()
    flat = dict(HEALTHY, cls_entropy_frac=0.999)
    _feed(hook, runner, flat, 9)
    # Checks at iterations 6 and 8 (the first past the warm-up of 4): 2 < 3.
    assert _warnings(runner) == []
    _feed(hook, runner, flat, 1)  # iteration 10: the third check in a row
    (message, ) = _warnings(runner)
    for part in ('image ([CLS]) head', 'uniform collapse',
                 'health/cls_entropy_frac = 0.999 > 0.98',
                 'teacher_temp = 1', 'center_momentum = 0.9',
                 'out_channels = 1024', 'per process 8', 'lr = 0.0005'):
        assert part in message, (part, message)
    _feed(hook, runner, flat, 20)
    assert len(_warnings(runner)) == 1  # once per head


def test_single_prototype_collapse_of_the_patch_head():
    hook = CollapseMonitorHook(warmup_iters=0, patience=2, interval=1)
    runner = _runner()
    _feed(hook, runner, dict(HEALTHY, patch_perplexity=1.01), 2)
    (message, ) = _warnings(runner)
    assert 'patch head is near single-prototype collapse' in message
    assert 'health/patch_perplexity = 1.01 < 1.5' in message


def test_a_healthy_interval_restarts_the_count():
    hook = CollapseMonitorHook(warmup_iters=0, patience=3, interval=1)
    runner = _runner()
    flat = dict(HEALTHY, cls_entropy_frac=0.999)
    for _ in range(5):
        _feed(hook, runner, flat, 2)
        _feed(hook, runner, HEALTHY, 1)
    assert _warnings(runner) == []


def test_the_interval_mean_decides():
    # One bad iteration in each interval of 4 is not a collapse: the mean
    # 0.25 * 0.999 + 0.75 * 0.7 is below 0.98.
    hook = CollapseMonitorHook(warmup_iters=0, patience=1, interval=4)
    runner = _runner()
    for _ in range(3):
        _feed(hook, runner, dict(HEALTHY, cls_entropy_frac=0.999), 1)
        _feed(hook, runner, HEALTHY, 3)
    assert _warnings(runner) == []


def test_non_finite_figures_and_missing_heads_are_not_collapse():
    hook = CollapseMonitorHook(warmup_iters=0, patience=1, interval=1)
    runner = _runner()
    _feed(hook, runner, {'cls_entropy_frac': float('nan'),
                         'cls_perplexity': float('nan')}, 3)
    assert _warnings(runner) == []


def test_interval_defaults_to_the_loggers():
    from mmengine.hooks import LoggerHook
    hook = CollapseMonitorHook()
    runner = _runner()
    runner.hooks = [LoggerHook(interval=7)]
    hook.before_train(runner)
    assert hook.interval == 7


def test_patience_must_be_positive():
    with pytest.raises(ValueError, match='patience'):
        CollapseMonitorHook(patience=0)
