"""Our multi-crop draws what the official torchvision pipeline draws.

``DataAugmentationDINO`` (facebookresearch/dino, as used by SelfPatch),
``DINOMultiCrop`` on the CPU, and ``DINOMultiCrop(photometric='device')``
followed by ``MultiCropDataPreprocessor`` (the GPU path, run here on CPU
tensors) each make the views of the same three JPEGs many times with fixed
seeds. Per view kind (first global, second global, local), two-sample tests
compare the crop area, aspect ratio and centre, the flip, jitter,
grayscale, blur and solarize rates, the jitter factors and the first op of
its random order, the blur radius, and the per-channel means and standard
deviations of the normalised outputs. The thresholds are validated by the
official pipeline against itself, and a pipeline with slightly wrong
settings must fail them.

Crops are made at 32 / 16 pixels instead of 224 / 96 to keep the test fast:
no parameter depends on the output size.

800 views per global kind are too few to see a 20% change of a global-only
rate here (power 0.02-0.11 at alpha = 1e-3);
test_multicrop_global_ops.py tests those rates on 10,000 draws each.
"""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from multicrop_stats import compare, failures, run_official, run_ours  # noqa

from reference.official_dino_augmentation import pil_loader  # noqa

CALLS = 800  # per run: 1600 global and 6400 local views
GLOBAL, LOCAL = 32, 16
SCALES = ((0.25, 1.0), (0.05, 0.25))  # the SelfPatch configs'
OURS = dict(type='DINOMultiCrop', global_crop_size=GLOBAL,
            local_crop_size=LOCAL, global_crops_scale=SCALES[0],
            local_crops_scale=SCALES[1], num_local_crops=8)


def _write_images(folder: Path):
    """Three textured colour JPEGs of different shapes (one wider than the
    4/3 ratio limit, one portrait)."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(120, 160), (160, 96), (90, 200)]):
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        noise = rng.normal(0, 12, img.shape)
        img = np.clip(img + noise, 0, 255).astype(np.uint8)
        path = folder / f'img{i}.jpg'
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        paths.append(str(path))
    return paths


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """Each pipeline decodes the files with its own loader."""
    from mmpretrain.registry import TRANSFORMS
    paths = _write_images(tmp_path_factory.mktemp('multicrop'))
    load = TRANSFORMS.build(dict(type='RobustLoadImageFromFile'))
    return ([pil_loader(p) for p in paths],
            [load(dict(img_path=p))['img'] for p in paths])


@pytest.fixture(scope='module')
def official(images):
    return run_official(images[0], CALLS, 0, GLOBAL, LOCAL, SCALES)


def _assert_same(p_values):
    assert len(p_values) == 63, sorted(p_values)  # 3 kinds x 21
    bad = failures(p_values)
    assert not bad, bad


def test_official_against_itself(images, official):
    other = run_official(images[0], CALLS, 1, GLOBAL, LOCAL, SCALES)
    _assert_same(compare(official, other))


def test_cpu_pipeline_matches_official(images, official):
    _assert_same(compare(run_ours(images[1], CALLS, 0, OURS), official))


def test_device_photometric_matches_official(images, official):
    ours = run_ours(images[1], CALLS, 0, dict(OURS, photometric='device'))
    _assert_same(compare(ours, official))


def test_wrong_settings_are_detected(images, official):
    """The tests have power: small changes to the recipe fail them (DINO's
    default global scale instead of SelfPatch's, +0.05 grayscale, -0.1
    brightness, +0.1 blur on the second global view)."""
    wrong = dict(OURS, global_crops_scale=(0.4, 1.0), grayscale_prob=0.25,
                 brightness=0.3, global_blur_prob=(1.0, 0.2))
    bad = failures(compare(run_ours(images[1], CALLS, 0, wrong), official))
    for key in ('global1/area', 'global2/area', 'local/gray',
                'local/brightness', 'global2/blur'):
        assert key in bad, (key, bad)
    assert 'local/area' not in bad and 'local/hue' not in bad, bad
