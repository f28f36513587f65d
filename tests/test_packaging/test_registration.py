"""Ordinary registration: a light package import, decorators only, and the
scope-prefixed types of the mmdet/mmseg configs."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _loaded_after(code: str) -> set:
    """Top-level OpenMMLab packages in ``sys.modules`` after ``code``, in a
    fresh interpreter (this process has imported everything already)."""
    probe = code + ('\nimport sys\nprint(sorted({m.split(".")[0] for m in '
                    'sys.modules if m.startswith("mm")}))')
    out = subprocess.run([sys.executable, '-c', probe], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return set(eval(out.strip().splitlines()[-1]))  # noqa: S307 (our list)


@pytest.mark.slow
def test_package_import_is_light():
    loaded = _loaded_after('import selfpatch_mm')
    assert not loaded & {'mmdet', 'mmseg', 'mmpretrain', 'mmcv'}, loaded


@pytest.mark.slow
def test_pretraining_modules_do_not_load_mmseg():
    # mmpretrain.models itself imports mmdet when it is installed (its
    # optional ResLayerExtraNorm), so only mmseg can be checked here.
    loaded = _loaded_after('import selfpatch_mm.models, selfpatch_mm.datasets,'
                           ' selfpatch_mm.engine, selfpatch_mm.evaluation, '
                           'selfpatch_mm.utils, selfpatch_mm.apis')
    assert 'mmpretrain' in loaded
    assert 'mmseg' not in loaded, loaded


def test_no_dynamic_registration_in_the_package():
    bad = []
    for path in (REPO / 'selfpatch_mm').rglob('*.py'):
        rel = str(path.relative_to(REPO))
        code = path.read_text()
        if re.search(r'\b__import__\(|\bimport_module\(', code):
            bad.append(rel)
        if re.search(r'force\s*=\s*True', code):
            bad.append(rel)
    assert not bad


def test_cross_package_configs_use_scope_prefixes():
    from mmengine.config import Config
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    from mmseg.registry import TRANSFORMS

    from selfpatch_mm.datasets.transforms.check_seg_labels import \
        CheckSegLabels
    registries = dict(mmdet=DET_MODELS, mmseg=SEG_MODELS,
                      mmpretrain=PRETRAIN_MODELS)
    bench = REPO / 'configs' / 'selfpatch' / 'benchmarks'
    for config in sorted(bench.glob('*.py')):
        cfg = Config.fromfile(str(config))
        # our backbones live in mmpretrain's registry only
        assert cfg.model.backbone.type.startswith('mmpretrain.')
        assert 'selfpatch_mm.models' in cfg.custom_imports.imports
        assert not cfg.custom_imports.allow_failed_imports
        registry = registries[cfg.default_scope]
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            backbone = registry.get(cfg.model.backbone.type)
        assert backbone.__module__.startswith('selfpatch_mm.models.'), config
        if cfg.default_scope == 'mmseg':
            assert TRANSFORMS.get('CheckSegLabels') is CheckSegLabels


def test_no_module_climbs_up_from_its_file():
    """Files a module needs come from the installed package
    (``selfpatch_mm.apis.installed``), never from a checkout guessed by
    climbing up from ``__file__``: installed from a wheel, that path points
    into site-packages."""
    climbing = []
    for path in (REPO / 'selfpatch_mm').rglob('*.py'):
        if '__file__' in path.read_text():
            climbing.append(str(path.relative_to(REPO)))
    assert not climbing, climbing
