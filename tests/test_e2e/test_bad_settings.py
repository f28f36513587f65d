"""Bad SelfPatch settings stop tools/train.py before anything is built:
no work dir, no data read, a last line naming the value and its range."""
from pathlib import Path

import pytest
# conftest.py puts this folder on sys.path
from e2e_helpers import DEMO_CFG, run_cmd, train_cmd


@pytest.mark.slow
@pytest.mark.parametrize('option, message', [
    ('model.neck.k=0', 'ValueError: SelfPatch k must be an integer in 1..8 '
     '(the 8 neighbours of a 3x3 window), got 0.'),
    ('model.neck.window=5', 'ValueError: SelfPatch window=5 needs a patch '
     'grid of at least 5x5, but a 32x32 crop with patch_size=8 gives 4x4'),
])
def test_bad_setting_fails_before_work(tmp_path: Path, option: str,
                                       message: str) -> None:
    work = tmp_path / 'work'
    proc = run_cmd(
        train_cmd(DEMO_CFG, work, '--cfg-options', option,
                  f'train_dataloader.dataset.data_root={tmp_path / "none"}'),
        cwd=tmp_path,
        expect_ok=False)
    assert proc.returncode != 0
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(message), proc.stdout[-3000:]
    assert not work.exists()  # the Runner was never built
