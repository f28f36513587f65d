"""Packaging for OpenMMLab users: the metafile names every config, the
package ships its configs and tools for mim, and ``mim train`` runs."""
import os.path as osp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import run_command, tool_env

REPO_ROOT = Path(__file__).resolve().parents[2]


def _metafile_models():
    index = yaml.safe_load((REPO_ROOT / 'model-index.yml').read_text())
    models = []
    for path in index['Import']:
        models += yaml.safe_load((REPO_ROOT / path).read_text())['Models']
    return models


def test_metafile_names_every_config():
    models = _metafile_models()
    listed = [m['Config'] for m in models]
    on_disk = sorted(
        str(p.relative_to(REPO_ROOT))
        for p in (REPO_ROOT / 'configs' / 'selfpatch').rglob('*.py'))
    assert sorted(listed) == on_disk
    for m in models:
        # mmpretrain's schema: the name is the config's file name.
        assert m['Name'] == Path(m['Config']).stem
        assert m['In Collection'] == 'SelfPatch'
        if m['Results']:
            # Numbers are the paper's, never presented as our runs.
            assert 'paper' in m['Metadata']['Results From']
        assert m['Weights'] is None or m['Weights'].startswith('https://')


def test_metafile_loads_with_modelindex():
    load = pytest.importorskip('modelindex.load_model_index').load
    index = load(str(REPO_ROOT / 'model-index.yml'))
    assert len(index.models) == len(_metafile_models())


def test_license_and_citation():
    assert 'Apache License' in (REPO_ROOT / 'LICENSE').read_text()
    cff = yaml.safe_load((REPO_ROOT / 'CITATION.cff').read_text())
    paper = cff['preferred-citation']
    assert paper['title'].startswith('Patch-level Representation Learning')
    assert [a['family-names'] for a in paper['authors']] == [
        'Yun', 'Lee', 'Kim', 'Shin'
    ]


@pytest.mark.slow
def test_setup_links_mim_files(tmp_path):
    """``add_mim_extension`` of setup.py, run as an editable install runs
    it, on a copy of the repository's top level."""
    for name in ('setup.py', 'model-index.yml', 'README.md'):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / 'requirements', tmp_path / 'requirements')
    (tmp_path / 'selfpatch_mm').mkdir()
    shutil.copy(REPO_ROOT / 'selfpatch_mm' / 'version.py',
                tmp_path / 'selfpatch_mm' / 'version.py')
    (tmp_path / 'configs').mkdir()
    (tmp_path / 'configs' / 'a.py').write_text('x = 1\n')
    (tmp_path / 'tools').mkdir()
    subprocess.run([sys.executable, 'setup.py', 'develop', '--help'],
                   cwd=tmp_path, check=True, capture_output=True)
    mim = tmp_path / 'selfpatch_mm' / '.mim'
    assert (mim / 'configs').is_symlink() and (mim / 'configs' /
                                               'a.py').is_file()
    assert (mim / 'model-index.yml').is_symlink()
    # A wheel build copies instead (no link may point out of a wheel).
    subprocess.run([sys.executable, 'setup.py', 'bdist_wheel', '--help'],
                   cwd=tmp_path, check=True, capture_output=True)
    assert (mim / 'configs' / 'a.py').is_file()
    assert not (mim / 'configs').is_symlink()


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which('mim') is None, reason='openmim is not installed')
def test_mim_train_runs_the_demo(tmp_path):
    """``mim train selfpatch_mm CONFIG`` finds the config in the package's
    .mim folder and runs tools/train.py."""
    if not (REPO_ROOT / 'selfpatch_mm' / '.mim' / 'configs').exists():
        pytest.skip('selfpatch_mm/.mim is missing: reinstall with '
                    '`pip install -e .` to create it')
    if not list(REPO_ROOT.glob('*.egg-info')):
        pytest.skip('no selfpatch_mm.egg-info in the repository')
    # mim locates an installed package through pkg_resources; for an
    # editable (PEP 660) install that is site-packages, which has no
    # selfpatch_mm folder, so the repository (holding pip's egg-info)
    # goes first on the path (as tool_env puts it).
    work_dir = tmp_path / 'work'
    run_command([
        'mim', 'train', 'selfpatch_mm',
        'selfpatch_vit-tiny-p8_1xb8-2e_demo.py', '--work-dir', work_dir,
        '--cfg-options', 'train_cfg.max_epochs=1',
        'train_dataloader.dataset.indices=8', 'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0', 'default_hooks.logger.interval=1'
    ], env=tool_env(threads=None), timeout=600)
    assert osp.isfile(work_dir / 'epoch_1.pth')
