"""tools/train.py and tools/test.py share their Runner arguments through
selfpatch_mm.apis.cli; the command lines stay as before."""
import os

import pytest
from helpers import load_tool

COMMON = ['--work-dir', 'wd', '--cfg-options', 'a.b=1', 'c=[1,2]',
          '--launcher', 'pytorch', '--local-rank', '3',
          '--allow-unsafe-pickle']


def _tool(name: str):
    return load_tool(f'tools/{name}.py')


@pytest.fixture
def clean_env(monkeypatch):
    """Both variables unset during the test and restored after it: the
    ``setenv`` records their state (``delenv(raising=False)`` on an unset
    variable records nothing, and ``parse_args`` then sets them for good);
    tests/conftest.py fails a test that leaks them."""
    for name in ('LOCAL_RANK', 'SELFPATCH_ALLOW_UNSAFE_PICKLE'):
        monkeypatch.setenv(name, 'recorded')
        monkeypatch.delenv(name)


@pytest.mark.parametrize('name,positionals', [
    ('train', ['cfg.py']),
    ('test', ['cfg.py', 'ckpt.pth']),
])
def test_shared_arguments(name, positionals, clean_env):
    args = _tool(name).parse_args([*positionals, *COMMON])
    assert args.config == 'cfg.py'
    assert args.work_dir == 'wd'
    assert args.cfg_options == {'a.b': 1, 'c': [1, 2]}
    assert args.launcher == 'pytorch'
    assert args.local_rank == 3
    # the launcher's rank and the opt-in reach mmengine / the loader
    assert os.environ['LOCAL_RANK'] == '3'
    assert os.environ['SELFPATCH_ALLOW_UNSAFE_PICKLE'] == '1'
    if name == 'test':
        assert args.checkpoint == 'ckpt.pth'


def test_old_spelling_and_defaults(clean_env, monkeypatch):
    monkeypatch.setenv('LOCAL_RANK', '5')  # torchrun's value wins
    args = _tool('train').parse_args(['cfg.py', '--local_rank', '1'])
    assert (args.work_dir, args.cfg_options, args.launcher) == (None, None,
                                                                'none')
    assert args.local_rank == 1
    assert os.environ['LOCAL_RANK'] == '5'
