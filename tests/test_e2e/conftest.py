"""Fixtures of the end-to-end pretraining tests."""
import sys
from pathlib import Path

import pytest

# --import-mode=importlib puts no test folder on sys.path; the tests here
# import e2e_helpers too.
sys.path.insert(0, str(Path(__file__).parent))
from e2e_helpers import STATE_DUMP_HOOK  # noqa: E402


@pytest.fixture
def hook_dir(tmp_path: Path) -> Path:
    """A folder holding the ``selfpatch_state_dump`` hook module; put it on
    the subprocess's PYTHONPATH."""
    folder = tmp_path / 'hook_module'
    folder.mkdir()
    (folder / 'selfpatch_state_dump.py').write_text(STATE_DUMP_HOOK)
    return folder
