"""StudentOptimWrapperConstructor: mmengine's parameter groups, without a
WARNING per frozen parameter."""
import logging
from pathlib import Path

from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor
from mmpretrain.registry import MODELS

import selfpatch_mm.engine  # noqa: F401
import selfpatch_mm.models  # noqa: F401
from selfpatch_mm.engine.optimizers import StudentOptimWrapperConstructor

DEMO = Path(__file__).resolve().parents[2] / 'configs' / 'selfpatch' / \
    'selfpatch_vit-tiny-p8_1xb8-2e_demo.py'


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _groups(constructor_cls, cfg, model, logger):
    handler = _Records()
    logger.addHandler(handler)
    try:
        wrapper = constructor_cls(
            dict(type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer),
            cfg.optim_wrapper.paramwise_cfg)(model)
    finally:
        logger.removeHandler(handler)
    groups = [(tuple(id(p) for p in g['params']), g['lr'],
               g['weight_decay']) for g in wrapper.optimizer.param_groups]
    return groups, handler.records


def test_same_groups_and_a_quiet_log():
    cfg = Config.fromfile(str(DEMO))
    assert cfg.optim_wrapper.constructor == 'StudentOptimWrapperConstructor'
    model = MODELS.build(cfg.model)
    logger = MMLogger.get_instance('student_constructor_test')
    want, loud = _groups(DefaultOptimWrapperConstructor, cfg, model, logger)
    got, quiet = _groups(StudentOptimWrapperConstructor, cfg, model, logger)
    assert got == want
    skipped = [r for r in loud if 'requires_grad=False' in r.getMessage()]
    teacher = sum(1 for _ in model.teacher.parameters())
    assert len(skipped) == teacher + 2  # the teacher and two weight gains
    assert not [r for r in quiet if r.levelno >= logging.WARNING]
    notes = [r.getMessage() for r in quiet
             if 'requires_grad=False' in r.getMessage()]
    assert len(notes) == 1 and notes[0].startswith(
        'Not optimised (requires_grad=False): 2 student parameters '
        '(head.last_layer.parametrizations.weight.original0, ')
