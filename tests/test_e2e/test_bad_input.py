"""Bad input to pretraining: each case gets a clear error or documented
handling, checked through the demo config's real dataset and pipeline and,
where it is cheap, through tools/train.py."""
from pathlib import Path
from typing import Dict

import cv2
import numpy as np
import pytest
import torch
# conftest.py puts this folder on sys.path
from e2e_helpers import DEMO_CFG, make_demo_images, run_cmd, train_cmd
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS, MODELS, TRANSFORMS
from PIL import Image

import selfpatch_mm.datasets  # noqa: F401  (registers our modules)
import selfpatch_mm.engine  # noqa: F401
import selfpatch_mm.models  # noqa: F401

GLOBAL, LOCAL = 64, 32  # the demo config's crop sizes
DEMO_VIEWS = [(3, GLOBAL, GLOBAL)] * 2 + [(3, LOCAL, LOCAL)] * 4
GARBAGE = b'this is not a JPEG file\n' * 8


def _write_odd_images(folder: Path) -> Dict[str, np.ndarray]:
    """Images a real folder may hold, and the BGR uint8 array each must
    load as (cv2's IMREAD_COLOR conventions)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    expected = {}

    gray = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    Image.fromarray(gray, 'L').save(folder / 'gray.png')
    expected['gray.png'] = np.repeat(gray[..., None], 3, axis=2)

    rgba = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)
    Image.fromarray(rgba, 'RGBA').save(folder / 'rgba.png')
    expected['rgba.png'] = rgba[..., 2::-1]  # alpha dropped, RGB -> BGR

    # 16-bit PNGs (colour and grayscale) are scaled to 8 bits (v >> 8).
    deep = rng.integers(0, 65536, (40, 50, 3), dtype=np.uint16)
    cv2.imwrite(str(folder / 'colour16.png'), deep)
    expected['colour16.png'] = (deep >> 8).astype(np.uint8)
    deep_gray = rng.integers(0, 65536, (40, 50), dtype=np.uint16)
    cv2.imwrite(str(folder / 'gray16.png'), deep_gray)
    expected['gray16.png'] = np.repeat(
        (deep_gray >> 8).astype(np.uint8)[..., None], 3, axis=2)

    # smaller than both crop sizes: the crops are upsampled
    small = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / 'small.png'), small)
    expected['small.png'] = small
    single = rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / 'one_pixel.png'), single)
    expected['one_pixel.png'] = single
    return expected


def _build_demo_dataset(data_root: Path, **options):
    """The demo config's training dataset (real pipeline) on ``data_root``.

    Args:
        data_root (Path): Image folder.
        **options: ``--cfg-options``-style overrides, relative to
            ``train_dataloader.dataset`` (dots written as ``__``).
    """
    cfg = Config.fromfile(str(DEMO_CFG))
    cfg.merge_from_dict({
        'train_dataloader.dataset.' + k.replace('__', '.'): v
        for k, v in options.items()
    })
    init_default_scope('mmpretrain')
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = str(data_root)
    return DATASETS.build(dataset_cfg)


def _index_of(dataset, name: str) -> int:
    names = [
        Path(dataset.get_data_info(i)['img_path']).name
        for i in range(len(dataset))
    ]
    return names.index(name)


# ---------------------------------------------------------------- folders
@pytest.mark.slow
def test_empty_image_folder_fails_clearly(tmp_path: Path) -> None:
    data = tmp_path / 'no_images'
    (data / 'class_a').mkdir(parents=True)
    (data / 'README.txt').write_text('not an image')
    proc = run_cmd(
        train_cmd(DEMO_CFG, tmp_path / 'work', '--cfg-options',
                  f'train_dataloader.dataset.data_root={data}',
                  'train_dataloader.num_workers=0'),
        cwd=tmp_path,
        expect_ok=False)
    assert proc.returncode != 0
    last = proc.stdout.strip().splitlines()[-1]
    # mmpretrain's CustomDataset: names the folder and the extensions.
    assert last.startswith('RuntimeError: Found 0 files'), last
    assert str(data) in last and '.jpg' in last and '.png' in last, last
    assert not (tmp_path / 'work' / 'epoch_1.pth').exists()


def test_missing_image_folder_names_it(tmp_path: Path) -> None:
    missing = tmp_path / 'data' / 'imagenet' / 'train'
    with pytest.raises(FileNotFoundError, match=str(missing)):
        _build_demo_dataset(missing)


# ---------------------------------------------------------------- images
def test_odd_images_load_as_3_channel_uint8(tmp_path: Path) -> None:
    expected = _write_odd_images(tmp_path / 'images')
    load = TRANSFORMS.build(dict(type='RobustLoadImageFromFile'))
    for name, want in expected.items():
        out = load(dict(img_path=str(tmp_path / 'images' / name)))
        assert out['img'].dtype == np.uint8, name
        np.testing.assert_array_equal(out['img'], want, err_msg=name)
        assert out['img_shape'] == want.shape[:2], name


def test_odd_images_go_through_demo_pipeline(tmp_path: Path) -> None:
    expected = _write_odd_images(tmp_path / 'images')
    dataset = _build_demo_dataset(tmp_path)
    assert len(dataset) == len(expected)
    for name in expected:
        sample = dataset[_index_of(dataset, name)]
        views = sample['inputs']
        assert [tuple(v.shape) for v in views] == DEMO_VIEWS, name
        assert all(v.dtype == torch.uint8 for v in views), name


def test_corrupt_image_error_names_file(tmp_path: Path) -> None:
    folder = tmp_path / 'images'
    make_demo_images(str(folder), num=2, size=64)
    (folder / 'garbage.jpg').write_bytes(GARBAGE)
    (folder / 'empty.jpg').write_bytes(b'')
    # the transform's default, and the demo pipeline with skipping off
    load = TRANSFORMS.build(dict(type='RobustLoadImageFromFile'))
    dataset = _build_demo_dataset(tmp_path, pipeline__0__skip_corrupt=False)
    for name in ('garbage.jpg', 'empty.jpg'):
        path = str(folder / name)
        with pytest.raises(OSError, match=f'Cannot read image .*{name}'):
            load(dict(img_path=path))
        with pytest.raises(OSError, match='skip_corrupt=True'):
            dataset[_index_of(dataset, name)]
    # with skipping on, the loader gives None and the dataset draws another
    # image instead
    skip = TRANSFORMS.build(
        dict(type='RobustLoadImageFromFile', skip_corrupt=True))
    assert skip(dict(img_path=str(folder / 'garbage.jpg'))) is None
    dataset = _build_demo_dataset(tmp_path)  # skip_corrupt=True
    sample = dataset[_index_of(dataset, 'garbage.jpg')]
    assert [tuple(v.shape) for v in sample['inputs']] == DEMO_VIEWS


@pytest.mark.slow
def test_training_skips_corrupt_and_takes_odd_images(tmp_path: Path) -> None:
    """tools/train.py on a folder of 2 unreadable files and 6 odd images:
    one epoch at batch 4 draws every file once; training finishes and the
    log names each skipped file."""
    folder = tmp_path / 'images'
    expected = _write_odd_images(folder)
    (folder / 'garbage.jpg').write_bytes(GARBAGE)
    (folder / 'truncated.png').write_bytes(
        cv2.imencode('.png', np.zeros((32, 32, 3),
                                      np.uint8))[1].tobytes()[:40])
    assert len(expected) + 2 == 8
    work_dir = tmp_path / 'work'
    out = run_cmd(
        train_cmd(DEMO_CFG, work_dir, '--cfg-options',
                  f'train_dataloader.dataset.data_root={tmp_path}',
                  'train_dataloader.batch_size=4',
                  'train_dataloader.num_workers=0', 'train_cfg.max_epochs=1'),
        cwd=tmp_path).stdout
    for name in ('garbage.jpg', 'truncated.png'):
        assert any('WARNING' in line and 'Skipped: Cannot read image' in line
                   and str(folder / name) in line
                   for line in out.splitlines()), (name, out[-3000:])
    assert out.count('Epoch(train) [1]') == 2, out[-3000:]
    assert (work_dir / 'epoch_1.pth').is_file()


# ---------------------------------------------------------------- crops
@pytest.mark.slow
def test_crop_not_divisible_by_patch_size(tmp_path: Path) -> None:
    cfg = Config.fromfile(str(DEMO_CFG))
    init_default_scope('mmpretrain')
    backbone = MODELS.build(cfg.model.backbone)
    assert backbone.patch_size == 8
    with pytest.raises(ValueError, match=r'60x64 .*patch_size=8'):
        backbone(torch.zeros(1, 3, 60, 64))
    # multiples of the patch size, square or not, are fine
    assert backbone(torch.zeros(1, 3, 48, 64))[0].shape[-2:] == (6, 8)

    # through tools/train.py: the global crops set to 60 pixels
    data = tmp_path / 'images'
    make_demo_images(str(data), num=4, size=64)
    proc = run_cmd(
        train_cmd(
            DEMO_CFG, tmp_path / 'work', '--cfg-options',
            f'train_dataloader.dataset.data_root={data}',
            'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            'train_dataloader.dataset.pipeline.1.global_crop_size=60'),
        cwd=tmp_path,
        expect_ok=False)
    assert proc.returncode != 0
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith('ValueError: SelfPatchViT got an input of 60x60'), \
        proc.stdout[-3000:]
    assert 'patch_size=8' in last and 'multiples of 8' in last, last
