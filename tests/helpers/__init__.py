# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""What the tests share: running the tools as a user does (in a subprocess
with this checkout importable, or imported for an in-process ``main``),
and small model and config settings. tests/conftest.py puts ``tests/`` on
``sys.path`` (``--import-mode=importlib`` puts no test folder there), so
every test imports ``helpers``."""
from .configs import DEMO_CONFIG, DEMO_VIT_ARCH, TINY_DENSE_VIT, derive_config
from .tools import (REPO_ROOT, TOOLS, load_tool, run_command, run_tool,
                    start_tool, tool_cmd, tool_env)

__all__ = [
    'DEMO_CONFIG', 'DEMO_VIT_ARCH', 'REPO_ROOT', 'TINY_DENSE_VIT', 'TOOLS',
    'derive_config', 'load_tool', 'run_command', 'run_tool', 'start_tool',
    'tool_cmd', 'tool_env'
]
