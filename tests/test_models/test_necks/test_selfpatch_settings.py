"""SelfPatch settings fail when the model is built (or at the first grid),
with messages that name the value and the valid range."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from selfpatch_mm.models import SelfPatchNeck
from selfpatch_mm.models.utils.matching_checks import (check_crop_grids,
                                                       check_patch_grid)
from selfpatch_mm.apis.config_checks import (check_selfpatch_config,
                                             crop_sizes_from_pipeline)

REPO = Path(__file__).resolve().parents[3]
DEMO_CFG = REPO / 'configs' / 'selfpatch' / \
    'selfpatch_vit-tiny-p8_1xb8-2e_demo.py'
PAPER_CFG = REPO / 'configs' / 'selfpatch' / \
    'selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py'


@pytest.mark.parametrize('kwargs, message', [
    (dict(k=0), r'k must be an integer in 1\.\.8 .*3x3 window.*got 0'),
    (dict(k=9), r'k must be an integer in 1\.\.8 .*got 9'),
    (dict(k=25, window=5), r'k must be an integer in 1\.\.24 .*got 25'),
    (dict(window=4), r'window must be an odd integer >= 3 .*got 4'),
    (dict(window=1), r'window must be an odd integer >= 3 .*got 1'),
    (dict(border='reflect'), r"border must be one of \('wrap', 'valid'\), "
     r"got 'reflect'"),
])
def test_bad_settings_fail_at_build(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SelfPatchNeck(in_channels=16, num_heads=2, **kwargs)


def test_good_settings_build():
    SelfPatchNeck(in_channels=16, num_heads=2, k=8, window=3)
    SelfPatchNeck(in_channels=16, num_heads=2, k=1, window=5, border='valid')


@pytest.mark.parametrize('hw, window, message', [
    ((1, 1), 3, r'at least 2x2, but .* gives 1x1'),
    ((1, 6), 3, r'at least 2x2, but .* gives 1x6'),
    ((4, 4), 5, r'window=5 needs a patch grid of at least 5x5, but .* gives '
     r'4x4.*window <= 4'),
    ((2, 2), 3, r'window=3 needs a patch grid of at least 3x3, .* 2x2'),
])
@pytest.mark.parametrize('border', ['wrap', 'valid'])
def test_small_grid_fails_at_first_forward(hw, window, message, border):
    neck = SelfPatchNeck(in_channels=16, num_heads=2, k=2, window=window,
                         border=border)
    feat = torch.randn(1, 16, *hw)
    neck([feat])  # the student path does no matching
    with pytest.raises(ValueError, match=message):
        neck([feat], with_neighbours=True)


def test_crop_grids():
    check_crop_grids([224, 96], 16, 3)
    check_crop_grids([(64, 48)], 8, 5)
    with pytest.raises(ValueError, match=r'a 8x8 crop with patch_size=8 '
                       r'gives 1x1'):
        check_crop_grids([64, 8], 8, 3)
    with pytest.raises(ValueError, match=r'32x32 crop with patch_size=16 '
                       r'gives 2x2'):
        check_crop_grids([32], 16, 3)
    with pytest.raises(ValueError, match=r'60x60 crop is not a multiple of '
                       r'patch_size=8'):
        check_crop_grids([60], 8, 3)
    check_patch_grid((3, 3), 3, 'a 3x3 grid')


def test_config_crop_sizes_are_read():
    for path, sizes in ((DEMO_CFG, [(64, 64), (32, 32)]),
                        (PAPER_CFG, [(224, 224), (96, 96)])):
        cfg = Config.fromfile(str(path))
        assert crop_sizes_from_pipeline(
            cfg.train_dataloader.dataset.pipeline) == sizes, path
        check_selfpatch_config(cfg)  # the shipped configs are valid


def _demo(**options) -> Config:
    cfg = Config.fromfile(str(DEMO_CFG))
    cfg.merge_from_dict(options)
    return cfg


def test_config_check_names_bad_values():
    with pytest.raises(ValueError, match=r'k must be .*1\.\.8.*got 0'):
        check_selfpatch_config(_demo(**{'model.neck.k': 0}))
    with pytest.raises(ValueError, match=r'window=7 needs .*7x7, but a 32x32 '
                       r'crop with patch_size=8 gives 4x4'):
        check_selfpatch_config(_demo(**{'model.neck.window': 7,
                                        'model.neck.k': 4}))
    # local crops of 8 pixels: a 1x1 grid of 8-pixel patches
    cfg = _demo()
    sizes = crop_sizes_from_pipeline(cfg.train_dataloader.dataset.pipeline)
    cfg = Config(_replace_size(cfg.to_dict(), 32, 8))
    assert sizes != crop_sizes_from_pipeline(
        cfg.train_dataloader.dataset.pipeline)
    with pytest.raises(ValueError, match=r'at least 2x2, but a 8x8 crop with '
                       r'patch_size=8 gives 1x1'):
        check_selfpatch_config(cfg)
    # DINO does no matching; other models are not checked
    check_selfpatch_config(_demo(**{'model.with_patch_loss': False,
                                    'model.patch_head': None,
                                    'model.neck.window': 7}))
    check_selfpatch_config(Config(dict(model=dict(type='ImageClassifier'))))


def _replace_size(node, old: int, new: int):
    """A copy of a config dict with crop sizes ``old`` set to ``new``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ('scale', 'local_crop_size') and value == old:
                out[key] = new
            else:
                out[key] = _replace_size(value, old, new)
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_replace_size(v, old, new) for v in node)
    return node
