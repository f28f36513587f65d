"""An installed wheel works without the checkout: its configs come from
``selfpatch_mm/.mim`` and build the model (issue 27)."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# What a wheel is built from: the tracked sources, without build leftovers
# (an editable install's .mim links, egg-info, work dirs).
_IGNORE = shutil.ignore_patterns('.git', '.mim', '*.egg-info', 'work_dirs',
                                 'build', 'dist', '__pycache__', '*.pyc',
                                 'data', '.pytest_cache')

# Runs in the temporary environment: the wheel's package first on the path,
# the checkout nowhere on it.
_PROBE = textwrap.dedent("""
    import sys
    from pathlib import Path
    checkout = Path(sys.argv[1]).resolve()
    site = Path(sys.argv[2]).resolve()
    assert not any(Path(p or '.').resolve() == checkout for p in sys.path)
    import selfpatch_mm
    assert Path(selfpatch_mm.__file__).resolve().is_relative_to(site), \\
        selfpatch_mm.__file__
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from selfpatch_mm.apis import register_all_modules
    from selfpatch_mm.apis.installed import config_path, tool_path
    path = config_path('selfpatch/selfpatch_vit-tiny-p8_1xb8-2e_demo.py')
    assert Path(path).resolve().is_relative_to(site), path
    assert Path(tool_path('train.py')).is_file()
    register_all_modules()
    cfg = Config.fromfile(path)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    print('built', type(model).__name__,
          sum(p.numel() for p in model.parameters()))
""")


@pytest.mark.slow
def test_wheel_installs_and_builds_a_packaged_config(tmp_path):
    src = tmp_path / 'src'
    shutil.copytree(REPO_ROOT, src, ignore=_IGNORE)
    dist = tmp_path / 'dist'
    # No build isolation: the build needs only setuptools and wheel, which
    # the test environment has; isolation would download them.
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', '-q', '-w',
        str(dist),
        str(src)
    ],
                   check=True,
                   capture_output=True,
                   text=True)
    wheel, = dist.glob('selfpatch_mm-*.whl')
    site = tmp_path / 'site'
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '--no-deps', '-q',
        '--target',
        str(site),
        str(wheel)
    ],
                   check=True,
                   capture_output=True,
                   text=True)
    assert (site / 'selfpatch_mm' / '.mim' / 'configs' / 'selfpatch').is_dir()
    assert not (site / 'selfpatch_mm' / '.mim' / 'configs').is_symlink()
    # The stack (torch, mmengine, mmpretrain) comes from this interpreter's
    # site-packages; selfpatch_mm from the wheel, which PYTHONPATH puts
    # before the editable install of the checkout.
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS='1')
    run_dir = tmp_path / 'elsewhere'
    run_dir.mkdir()
    proc = subprocess.run(
        [sys.executable, '-c', _PROBE,
         str(REPO_ROOT), str(site)],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert 'built SelfPatch' in proc.stdout, proc.stdout
