"""Gradient accumulation: the EMA teacher moves only with optimizer steps.

Runs ``tools/train.py --amp-dtype bf16`` (CPU autocast, through the AMP
wrapper) with ``accumulative_counts=3`` and records, per iteration, whether
the student's and the teacher's weights changed.
"""
import json
from pathlib import Path

import pytest
# conftest.py puts this folder on sys.path
from e2e_helpers import (make_demo_images, run_cmd, subprocess_env,
                         train_cmd, write_config)

CHANGE_HOOK = '''
import json
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


def _flat(module):
    return torch.cat([p.detach().flatten().clone()
                      for p in module.parameters()])


@HOOKS.register_module()
class RecordChangesHook(Hook):
    """Which iterations changed the student and the teacher."""

    priority = 'LOWEST'  # after TeacherEMAHook

    def __init__(self, out_file):
        self.out_file = out_file
        self.changes = dict(student=[], teacher=[])

    def _parts(self, runner):
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        return dict(student=model.backbone, teacher=model.teacher.backbone)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._before = {k: _flat(m) for k, m in self._parts(runner).items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        for k, m in self._parts(runner).items():
            if not torch.equal(_flat(m), self._before[k]):
                self.changes[k].append(runner.iter)

    def after_train(self, runner):
        with open(self.out_file, 'w') as f:
            json.dump(self.changes, f)
'''

ITERS = 8  # 2 epochs x 8 images / batch 2


@pytest.fixture
def change_hook_dir(tmp_path: Path) -> Path:
    folder = tmp_path / 'change_hook'
    folder.mkdir()
    (folder / 'record_changes.py').write_text(CHANGE_HOOK)
    return folder


@pytest.mark.slow
def test_teacher_moves_only_with_optimizer_steps(tmp_path: Path,
                                                 change_hook_dir: Path):
    data = tmp_path / 'images'
    make_demo_images(str(data), num=8, size=64)
    out = tmp_path / 'changes.json'
    cfg = write_config(
        tmp_path / 'accumulate.py', {
            'train_dataloader.dataset.data_root': str(data),
            'train_dataloader.batch_size': 2,
            'train_dataloader.num_workers': 0,
            'optim_wrapper.accumulative_counts': 3,
            'custom_imports.imports': ['selfpatch_mm', 'record_changes'],
            'custom_hooks': [
                dict(type='TeacherEMAHook', momentum=0.996,
                     end_momentum=1.0),
                dict(type='TeacherTempWarmupHook'),
                dict(type='FreezeLastLayerHook', num_epochs=1),
                dict(type='RecordChangesHook', out_file=str(out)),
            ],
        })
    run_cmd(train_cmd(cfg, tmp_path / 'work', '--amp-dtype', 'bf16'),
            cwd=tmp_path, env=subprocess_env(change_hook_dir))
    changes = json.loads(out.read_text())
    # Steps after micro-batches 3, 6 and the last one (mmengine steps on
    # the remainder): 0-based iterations 2, 5 and 7.
    assert changes['student'] == [2, 5, ITERS - 1]
    assert changes['teacher'] == changes['student']
