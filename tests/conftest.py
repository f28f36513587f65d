"""Fixtures shared by every test folder."""
import pytest
from mmengine.registry import DefaultScope, init_default_scope


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
