"""DINOMultiCrop and MultiCropDataPreprocessor: known answers against
Pillow / torchvision kernels and between the CPU and device paths."""
import cv2
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS, TRANSFORMS
from PIL import Image, ImageFilter, ImageOps

import selfpatch_mm.datasets  # noqa: F401  (registers our modules)
import selfpatch_mm.engine  # noqa: F401
import selfpatch_mm.models  # noqa: F401
from selfpatch_mm.datasets.transforms import uint8_photometric as U
from selfpatch_mm.models.data_preprocessors import apply_photometric

PAPER = 'configs/selfpatch/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py'
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
NO_PHOTOMETRIC = dict(jitter_prob=0.0, grayscale_prob=0.0,
                      global_blur_prob=0.0, local_blur_prob=0.0,
                      global_solarize_prob=0.0)


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(2, h // 12), max(2, w // 12), 3),
                          dtype=np.uint8)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img + rng.normal(0, 15, img.shape), 0,
                   255).astype(np.uint8)


def _build(**kwargs):
    init_default_scope('mmpretrain')
    return TRANSFORMS.build(dict(type='DINOMultiCrop', **kwargs))


def _pil(bgr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))


def _bgr(pil: Image.Image) -> np.ndarray:
    return np.asarray(pil)[..., ::-1].astype(np.int64)


@pytest.mark.parametrize('shape', [(375, 500), (60, 40)])
def test_resize_matches_pil_antialiased_bicubic(shape):
    """Down- (375x500) and up-scaled (60x40) crops: within 1 grey level of
    Pillow's crop + BICUBIC resize (torchvision's PIL path) on average."""
    img = _textured(*shape)
    np.random.seed(0)
    t = _build(flip_prob=0.0, record_params=True, **NO_PHOTOMETRIC)
    out = t(dict(img=img))
    pil = _pil(img)
    diffs = []
    for view, (top, left, h, w), size in zip(out['img'],
                                             out['multicrop_params']['crop'],
                                             t.sizes):
        assert view.shape == (size, size, 3) and view.dtype == np.uint8
        ref = pil.crop((left, top, left + w, top + h)).resize(
            (size, size), Image.BICUBIC)
        diffs.append(np.abs(view.astype(np.int64) - _bgr(ref)).mean())
    assert max(diffs) < 1.0, diffs


def test_flip_mirrors_the_same_crop():
    img = _textured(120, 160)
    views = []
    for flip in (0.0, 1.0):
        np.random.seed(3)
        views.append(_build(flip_prob=flip, **NO_PHOTOMETRIC)(
            dict(img=img))['img'])
    for a, b in zip(*views):
        np.testing.assert_array_equal(a[:, ::-1], b)


def test_uint8_ops_match_torchvision_pil_kernels():
    img = _textured(64, 64, seed=1)
    pil = _pil(img)

    def diff(ours, ref):
        return np.abs(ours.astype(np.int64) - _bgr(ref))

    for f in (0.6, 0.93, 1.37):  # Image.blend, float32, truncated: exact
        assert diff(U.adjust_brightness(img, f),
                    TF.adjust_brightness(pil, f)).max() == 0
        assert diff(U.adjust_contrast(img, f),
                    TF.adjust_contrast(pil, f)).max() == 0
    for f in (0.8, 1.2):
        assert diff(U.adjust_saturation(img, f),
                    TF.adjust_saturation(pil, f)).max() <= 1
    for f in (-0.1, 0.03, 0.1):  # OpenCV's vs Pillow's 8-bit HSV rounding
        d = diff(U.adjust_hue(img, f), TF.adjust_hue(pil, f))
        assert d.mean() < 1.5, (f, d.mean())
    assert diff(U.to_grayscale(img), TF.rgb_to_grayscale(pil, 3)).max() <= 1
    for r in (0.1, 1.0, 2.0):  # true Gaussian vs Pillow's 3 box blurs
        d = diff(U.gaussian_blur(img, r),
                 pil.filter(ImageFilter.GaussianBlur(r)))
        assert d.mean() < 1.0, (r, d.mean())
    assert diff(U.solarize(img), ImageOps.solarize(pil)).max() == 0


def _fixed_params(n: int) -> dict:
    """Every op on, a different order and factors per image."""
    rng = np.random.default_rng(0)
    return dict(
        jitter=np.ones(n, bool),
        factors=np.stack([
            rng.uniform(0.6, 1.4, n),
            rng.uniform(0.6, 1.4, n),
            rng.uniform(0.8, 1.2, n),
            rng.uniform(-0.1, 0.1, n)
        ], 1),
        order=np.stack([rng.permutation(4) for _ in range(n)]),
        gray=np.arange(n) % 3 == 0,
        blur=np.arange(n) % 2 == 0,
        radius=rng.uniform(0.1, 2.0, n),
        solarize=np.arange(n) % 4 == 1)


def test_device_kernels_match_cpu_kernels():
    """The batched float kernels of the GPU path compute what the uint8
    kernels of the CPU path compute, per image, for the same parameters."""
    n = 8
    imgs = [_textured(40, 40, seed=s) for s in range(n)]
    p = _fixed_params(n)
    t = _build()
    cpu = np.stack([t._photometric(img, p, k) for k, img in enumerate(imgs)])
    x = torch.from_numpy(np.stack(imgs)[..., ::-1].copy()).permute(
        0, 3, 1, 2).float()  # RGB, as after the preprocessor's to_rgb
    tp = {k: torch.from_numpy(np.asarray(v)) for k, v in p.items()}
    tp['factors'] = tp['factors'].float()
    tp['radius'] = tp['radius'].float()
    dev = apply_photometric(x, tp, max_radius=2.0)
    dev = dev.permute(0, 2, 3, 1).numpy()[..., ::-1]
    assert dev.min() >= 0 and dev.max() <= 255
    np.testing.assert_array_equal(dev, np.round(dev))  # integer levels
    per_image = np.abs(dev - cpu).mean(axis=(1, 2, 3))
    assert per_image.max() < 1.5, per_image


def test_odd_inputs_give_every_view():
    t = _build(num_local_crops=3, global_crop_size=32, local_crop_size=16)
    for img in (_textured(1, 1), _textured(20, 300),
                _textured(50, 40)[..., 0]):  # 1 pixel, very wide, 2-D gray
        views = t(dict(img=img))['img']
        assert [v.shape for v in views] == [(32, 32, 3)] * 2 + [(16, 16, 3)
                                                                ] * 3
        assert all(v.dtype == np.uint8 and v.flags.c_contiguous
                   for v in views)


def test_config_and_arguments():
    cfg = Config.fromfile(PAPER)
    mc = cfg.train_dataloader.dataset.pipeline[1]
    t = _build(**{k: v for k, v in mc.items() if k != 'type'})
    assert t.view_sizes == [(224, 224)] * 2 + [(96, 96)] * 8
    assert t.scales == [(0.25, 1.0)] * 2 + [(0.05, 0.25)] * 8
    assert t.photometric_cfg['blur_prob'] == [1.0, 0.1] + [0.5] * 8
    assert t.photometric_cfg['solarize_prob'] == [0.0, 0.2] + [0.0] * 8
    assert cfg.model.data_preprocessor.type == 'MultiCropDataPreprocessor'
    loader = cfg.train_dataloader
    assert loader.persistent_workers and loader.pin_memory
    assert loader.num_workers >= 1 and loader.prefetch_factor >= 2
    with pytest.raises(ValueError, match="'cpu' or 'device'"):
        _build(photometric='gpu')
    with pytest.raises(ValueError, match='needs 3 values'):
        _build(num_global_crops=3)  # the default blur probs are for 2


def _batch(photometric: str, n: int = 4):
    t = _build(global_crop_size=32, local_crop_size=16, num_local_crops=2,
               photometric=photometric)
    pack = TRANSFORMS.build(
        dict(type='PackInputs', meta_keys=('multicrop_photometric', )))
    img = _textured(64, 64)
    return default_collate([pack(t(dict(img=img))) for _ in range(n)])


def _preprocessor(type_):
    return MODELS.build(dict(type=type_, mean=MEAN, std=STD, to_rgb=True))


def test_preprocessor_is_selfsup_without_deferred_ops():
    np.random.seed(0)
    data = _batch('cpu')
    ours = _preprocessor('MultiCropDataPreprocessor')(data, True)['inputs']
    ref = _preprocessor('SelfSupDataPreprocessor')(data, True)['inputs']
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_device_path_draws_per_sample_and_per_view():
    """4 copies of one image with identical crops: the deferred photometric
    ops still differ between samples and between views."""
    np.random.seed(0)
    data = _batch('device')
    # same crops for every sample, so any difference is photometric
    for v in data['inputs']:
        v[:] = v[:1]
    pre = _preprocessor('MultiCropDataPreprocessor')
    pre.record_params = True
    torch.manual_seed(0)
    views = pre(data, True)['inputs']
    g1 = views[0]
    assert not torch.equal(g1[0], g1[1]) and not torch.equal(g1[1], g1[2])
    radius = pre.last_params[0]['radius']  # the global group, view-major
    assert len(radius) == 8 and len(set(radius.tolist())) == 8
    assert pre.last_params[0]['blur'][:4].all()  # blur prob 1.0, view 1
    with pytest.raises(ValueError, match='views'):
        pre._photometric(views[:3], data['data_samples'][0].metainfo[
            'multicrop_photometric'])


@pytest.mark.parametrize('photometric', ['cpu', 'device'])
def test_paper_pipeline_gives_the_official_views(tmp_path, photometric):
    """The paper config's pipeline and data preprocessor: 10 views with the
    shapes and dtype of the official pipeline's tensors (plus the batch)."""
    from reference.official_dino_augmentation import (
        DataAugmentationDINO, pil_loader)
    path = str(tmp_path / 'img.jpg')
    cv2.imwrite(path, _textured(375, 500))
    cfg = Config.fromfile(PAPER)
    cfg.merge_from_dict(
        {'train_dataloader.dataset.pipeline.1.photometric': photometric})
    init_default_scope('mmpretrain')
    steps = [TRANSFORMS.build(t) for t in cfg.train_dataloader.dataset.pipeline]
    samples = []
    for _ in range(2):
        results = dict(img_path=path)
        for step in steps:
            results = step(results)
        samples.append(results)
    pre = MODELS.build(cfg.model.data_preprocessor)
    ours = pre(default_collate(samples), True)['inputs']
    official = DataAugmentationDINO((0.25, 1.0), (0.05, 0.25), 8)(
        pil_loader(path))
    assert [tuple(v.shape) for v in ours] == [(2, ) + tuple(v.shape)
                                              for v in official]
    assert {v.dtype for v in ours} == {v.dtype for v in official} == {
        torch.float32
    }


def test_palette_cmyk_and_exif_images_through_the_pipeline(tmp_path):
    """The loader is unchanged (OpenCV's IMREAD_COLOR): palette and CMYK
    images load as 3-channel BGR, EXIF orientation is applied; every one
    then gives all views."""
    rgb = _textured(40, 60)[..., ::-1].copy()
    pil = Image.fromarray(rgb)
    pil.convert('P', palette=Image.ADAPTIVE).save(tmp_path / 'palette.png')
    pil.convert('CMYK').save(tmp_path / 'cmyk.jpg', quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    pil.save(tmp_path / 'rotated.jpg', quality=95, exif=exif)
    init_default_scope('mmpretrain')
    load = TRANSFORMS.build(dict(type='RobustLoadImageFromFile'))
    crop = _build(num_local_crops=2, global_crop_size=32, local_crop_size=16)
    palette = Image.open(tmp_path / 'palette.png').convert('RGB')
    want = {'palette.png': np.asarray(palette)[..., ::-1]}
    for name in ('palette.png', 'cmyk.jpg', 'rotated.jpg'):
        img = load(dict(img_path=str(tmp_path / name)))['img']
        assert img.dtype == np.uint8 and img.ndim == 3, name
        assert img.shape == ((60, 40, 3) if name == 'rotated.jpg' else
                             (40, 60, 3)), name
        if name in want:
            np.testing.assert_array_equal(img, want[name])
        views = crop(dict(img=img))['img']
        assert [v.shape for v in views] == [(32, 32, 3)] * 2 + [(16, 16, 3)
                                                                ] * 2
