"""CompileHook without compiling: the parts it asks for, its refusal of a
model without them, and tools/train.py --compile adding it once."""
import pytest
import torch

from selfpatch_mm.engine.hooks import CompileHook


class _Runner:

    def __init__(self, model):
        self.model = model
        self.logger = _Logger()


class _Logger:

    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)


def test_compile_hook_refuses_a_model_without_parts():
    class Plain(torch.nn.Module):
        pass

    with pytest.raises(TypeError, match='Plain has no compile_parts'):
        CompileHook().before_train(_Runner(Plain()))


def test_compile_hook_passes_its_settings_to_compile_parts():
    calls = []

    class Algo(torch.nn.Module):

        def compile_parts(self, parts, losses, **options):
            calls.append((parts, losses, options))
            return ['backbone', 'teacher.backbone']

    runner = _Runner(Algo())
    CompileHook(parts=['backbone'], losses=True, mode='max-autotune') \
        .before_train(runner)
    assert calls == [(['backbone'], True, dict(mode='max-autotune'))]
    assert 'backbone, teacher.backbone' in runner.logger.lines[0]


def test_train_compile_flag_adds_the_hook_once(monkeypatch):
    from helpers import load_tool
    from mmengine.config import Config

    # parse_args exports LOCAL_RANK when unset: recorded, so it is undone
    monkeypatch.setenv('LOCAL_RANK', '0')
    train = load_tool('tools/train.py')
    cfg = Config(dict(custom_hooks=[dict(type='TeacherEMAHook')]))
    train.enable_compile(cfg)
    train.enable_compile(cfg)
    assert [h['type'] for h in cfg.custom_hooks] == [
        'TeacherEMAHook', 'CompileHook']
    mine = Config(dict(custom_hooks=[dict(type='CompileHook', losses=True)]))
    train.enable_compile(mine)
    assert mine.custom_hooks == [dict(type='CompileHook', losses=True)]
    args = train.parse_args(['cfg.py', '--compile'])
    assert args.compile
