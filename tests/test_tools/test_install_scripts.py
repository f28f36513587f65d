"""Static checks of the install/CI scripts and the packaging metadata."""
import re
import shutil
from pathlib import Path

import pytest
from helpers import run_command

REPO_ROOT = Path(__file__).resolve().parents[2]
README_TEST_COMMAND = 'python -m pytest tests -q -n 2 --dist loadfile'
SHELL_SCRIPTS = [
    '.ci/run',
    'tools/install.sh',
    'tools/dist_train.sh',
    'tools/dist_test.sh',
    'tools/dist_run.sh',
    'tools/slurm_train.sh',
    'tools/slurm_test.sh',
    'tools/slurm_run.sh',
]


def _read(rel: str) -> str:
    return (REPO_ROOT / rel).read_text()


def _code_lines(rel: str) -> list:
    """Non-comment, non-blank lines of a shell script."""
    return [
        line.strip() for line in _read(rel).splitlines()
        if line.strip() and not line.strip().startswith('#')
    ]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('bash') is None, reason='needs bash')
@pytest.mark.parametrize('script', SHELL_SCRIPTS)
def test_shell_syntax(script: str) -> None:
    path = REPO_ROOT / script
    assert path.is_file(), script
    run_command(['bash', '-n', path])
    assert _read(script).startswith('#!/usr/bin/env bash')


@pytest.mark.parametrize('script', ['.ci/run', 'tools/install.sh'])
def test_strict_mode(script: str) -> None:
    assert 'set -euo pipefail' in _code_lines(script)


def test_ci_runs_install_then_readme_test_command() -> None:
    lines = _code_lines('.ci/run')
    assert 'bash tools/install.sh' in lines
    assert README_TEST_COMMAND in lines
    assert lines.index('bash tools/install.sh') < lines.index(
        README_TEST_COMMAND)
    # the test command is the last step, so its exit status is the CI's
    assert lines[-1] == README_TEST_COMMAND
    text = _read('.ci/run')
    assert '-m venv' in text and 'trap cleanup EXIT' in text
    assert 'export PIP_FIND_LINKS' in text and '../shared/wheels' in text


def test_readme_uses_the_same_commands() -> None:
    readme = REPO_ROOT / 'README.md'
    if not readme.is_file():
        pytest.skip('README.md not written yet')
    text = readme.read_text()
    assert 'bash tools/install.sh' in text
    assert README_TEST_COMMAND in text


def test_install_pins_match_requirements() -> None:
    install = _read('tools/install.sh')
    mminstall = _read('requirements/mminstall.txt')
    for spec in ('torch===2.13.0', 'torchvision==0.28.0', 'mmcv==2.1.0'):
        assert spec in mminstall
    # `===`: `==2.13.0` would also take a local `2.13.0+cpu` wheel
    assert "TORCH_SPEC='torch===2.13.0'" in install
    assert "TORCHVISION_SPEC='torchvision==0.28.0'" in install
    assert "MMCV_VERSION='2.1.0'" in install
    assert '--no-build-isolation' in install
    assert 'MMCV_WITH_OPS=1' in install and 'FORCE_CUDA=1' in install
    assert '--no-binary mmcv' in install
    assert '-r requirements/runtime.txt' in install
    assert '-r requirements/tests.txt' in install
    assert re.search(r'install --no-build-isolation -e \.', install)
    runtime = _read('requirements/runtime.txt')
    for pin in ('mmengine==0.10.7', 'mmpretrain==1.2.0', 'mmdet==3.3.0',
                'mmsegmentation==1.2.2', 'pycocotools', 'ftfy', 'regex',
                'setuptools>=77.0.3,<81'):
        assert pin in runtime


def test_setup_keeps_torch_and_mmcv_out_of_install_requires() -> None:
    # setuptools' distutils shim; stop before any command runs
    from distutils.core import run_setup
    dist = run_setup(str(REPO_ROOT / 'setup.py'), stop_after='init')
    names = {
        re.split(r'[<>=!~ ;\[]', r, maxsplit=1)[0].lower()
        for r in dist.install_requires
    }
    assert not names & {'torch', 'torchvision', 'mmcv', 'mmcv-full'}, names
    assert {'mmengine', 'mmpretrain', 'mmdet', 'mmsegmentation'} <= names
    assert 'pytest' in ' '.join(dist.extras_require['tests'])
    assert dist.get_name() == 'selfpatch_mm'
    assert dist.get_version() == '0.1.0'
    assert "__version__ = '0.1.0'" in _read('selfpatch_mm/version.py')
