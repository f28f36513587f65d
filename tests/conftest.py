"""Fixtures shared by every test folder."""
import os
import sys
from pathlib import Path

import pytest
from mmengine.registry import DefaultScope, init_default_scope

# --import-mode=importlib puts no test folder on sys.path: this one makes
# the shared ``helpers`` and ``reference`` packages importable from every
# test, and the benchmark tools' internals (tools/analysis_tools/
# pretrain_benchmark, which is not part of the installed package).
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(
    1, str(Path(__file__).parents[1] / 'tools' / 'analysis_tools'))


@pytest.fixture(autouse=True)
def mmpretrain_default_scope():
    """Start every test in mmpretrain's registry scope.

    A Runner built in-process (a hook or loader test) leaves its own scope
    current (``mmengine``, ``mmdet``...); tests that then build our models
    through ``mmpretrain.registry.MODELS`` would look in the wrong registry
    and depend on the order the suite runs in.
    """
    init_default_scope('mmpretrain')
    yield
    current = DefaultScope.get_current_instance()
    if current is not None and current.scope_name != 'mmpretrain':
        init_default_scope('mmpretrain')


#: Variables a tool's ``parse_args`` exports (``--allow-unsafe-pickle``,
#: ``--local-rank``). One left set switches off the unsafe-pickle refusal,
#: or sets a rank, for every later test of the worker and its subprocesses.
GUARDED_ENV = ('SELFPATCH_ALLOW_UNSAFE_PICKLE', 'LOCAL_RANK')


@pytest.fixture(autouse=True)
def no_leaked_environment():
    """Fail a test that leaves :data:`GUARDED_ENV` changed (and undo it).

    ``monkeypatch.delenv(name, raising=False)`` on an unset variable
    records nothing, so a variable the test's code then sets is not
    removed at teardown; this check catches that.
    """
    before = {k: os.environ.get(k) for k in GUARDED_ENV}
    yield
    after = {k: os.environ.get(k) for k in GUARDED_ENV}
    if after != before:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        pytest.fail(f'the test left the environment changed: {before} '
                    f'before, {after} after; set variables with '
                    'monkeypatch.setenv so teardown restores them')
