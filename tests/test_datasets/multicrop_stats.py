"""Helpers of the multi-crop distribution tests: run a pipeline many times
on the same images, record what each view drew and per-channel statistics
of its normalised output, and compare two such records with two-sample
tests."""
import contextlib
import random
from typing import Dict, List

import numpy as np
import torch
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS, TRANSFORMS
from scipy import stats

import selfpatch_mm.datasets  # noqa: F401  (registers our modules)
import selfpatch_mm.engine  # noqa: F401
import selfpatch_mm.models  # noqa: F401
from reference.official_dino_augmentation import \
    DataAugmentationDINO

KINDS = ('global1', 'global2', 'local')
JITTER = ('brightness', 'contrast', 'saturation', 'hue')
# continuous quantities (two-sample Kolmogorov-Smirnov) and rates
# (chi-square on the contingency table); conditional ones are recorded
# only where the op was applied
CONTINUOUS = ('area', 'aspect', 'centre_x', 'centre_y', *JITTER, 'radius',
              'mean_r', 'mean_g', 'mean_b', 'std_r', 'std_g', 'std_b')
CATEGORICAL = ('flip', 'jitter', 'first_op', 'gray', 'blur', 'solarize')
ALPHA = 1e-3  # per test; 63 tests, fixed seeds

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


@contextlib.contextmanager
def one_thread():
    """Tiny tensors: intra-op threads only contend (and the test machine
    is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _kind(k: int) -> str:
    return KINDS[min(k, 2)]


class Record:
    """Per view kind, a list of values for every quantity."""

    def __init__(self) -> None:
        self.values = {k: {q: [] for q in CONTINUOUS + CATEGORICAL}
                       for k in KINDS}

    def add_view(self, k: int, size, box, flip, jitter, gray, radius,
                 solarize) -> None:
        """One view: image ``size`` (H, W), crop ``box`` (top, left, h, w),
        ``jitter`` None or (order, b, c, s, h), ``radius`` None if not
        blurred."""
        v = self.values[_kind(k)]
        height, width = size
        top, left, h, w = (int(b) for b in box)
        v['area'].append(h * w / (height * width))
        v['aspect'].append(w / h)
        v['centre_x'].append((left + w / 2) / width)
        v['centre_y'].append((top + h / 2) / height)
        v['flip'].append(bool(flip))
        v['jitter'].append(jitter is not None)
        if jitter is not None:
            v['first_op'].append(int(jitter[0][0]))
            for name, f in zip(JITTER, jitter[1:]):
                v[name].append(float(f))
        v['gray'].append(bool(gray))
        v['blur'].append(radius is not None)
        if radius is not None:
            v['radius'].append(float(radius))
        v['solarize'].append(bool(solarize))

    def add_outputs(self, k: int, views: torch.Tensor) -> None:
        """Per-channel means and stds of normalised ``(n, 3, H, W)``
        views of kind ``k``."""
        v = self.values[_kind(k)]
        flat = views.reshape(len(views), 3, -1).double()
        mean, std = flat.mean(-1), flat.std(-1)
        for c, name in enumerate('rgb'):
            v['mean_' + name] += mean[:, c].tolist()
            v['std_' + name] += std[:, c].tolist()


@one_thread()
def run_official(images: List, calls: int, seed: int, global_size: int,
                 local_size: int, scales) -> Record:
    """``DataAugmentationDINO`` on ``images`` (PIL RGB), round robin."""
    random.seed(seed)
    torch.manual_seed(seed)
    aug = DataAugmentationDINO(scales[0], scales[1], 8, global_size,
                               local_size, record=True)
    rec = Record()
    outputs = [[], [], []]
    for n in range(calls):
        img = images[n % len(images)]
        views = aug(img)
        for k, (p, view) in enumerate(zip(aug.last_params, views)):
            rec.add_view(k, (img.height, img.width), p['crop'],
                         p.get('flip', False), p.get('jitter'),
                         p.get('gray', False), p.get('radius'),
                         p.get('solarize', False))
        outputs[0].append(views[0])
        outputs[1].append(views[1])
        outputs[2] += views[2:]
    for k, views in enumerate(outputs):
        rec.add_outputs(k, torch.stack(views))
    return rec


@one_thread()
def run_ours(images: List[np.ndarray], calls: int, seed: int,
             multicrop: Dict, batch: int = 300) -> Record:
    """``DINOMultiCrop`` + ``PackInputs`` + ``MultiCropDataPreprocessor``
    on ``images`` (BGR uint8), round robin; with ``photometric='device'``
    the preprocessor runs the photometric ops on these CPU tensors."""
    init_default_scope('mmpretrain')
    np.random.seed(seed)
    torch.manual_seed(seed)
    crop = TRANSFORMS.build(dict(multicrop, record_params=True))
    pack = TRANSFORMS.build(
        dict(type='PackInputs',
             meta_keys=('multicrop_photometric', 'multicrop_params',
                        'img_shape')))
    pre = MODELS.build(
        dict(type='MultiCropDataPreprocessor', mean=MEAN, std=STD,
             to_rgb=True, record_params=True))
    rec = Record()
    for start in range(0, calls, batch):
        samples = []
        for n in range(start, min(calls, start + batch)):
            img = images[n % len(images)]
            samples.append(
                pack(crop(dict(img=img, img_shape=img.shape[:2]))))
        data = default_collate(samples)
        out = pre(data, True)['inputs']
        _add_batch(rec, data['data_samples'], out, pre.last_params)
    return rec


def _add_batch(rec: Record, data_samples, views, device_params) -> None:
    """Record a preprocessed batch (CPU or deferred photometric params)."""
    per_view = {}
    for group in device_params or []:  # rows are view-major in a group
        batch = len(data_samples)
        for g, k in enumerate(group['views']):
            per_view[k] = {
                key: val[g * batch:(g + 1) * batch]
                for key, val in group.items() if key != 'views'
            }
    for b, sample in enumerate(data_samples):
        p = sample.metainfo['multicrop_params']
        for k in range(len(views)):
            q = {key: val[b] for key, val in per_view[k].items()
                 } if per_view else {key: val[k] for key, val in p.items()}
            jitter = None
            if q['jitter']:
                jitter = [list(np.asarray(q['order'])),
                          *np.asarray(q['factors']).tolist()]
            rec.add_view(k, sample.img_shape, p['crop'][k], p['flip'][k],
                         jitter, q['gray'],
                         float(q['radius']) if q['blur'] else None,
                         q['solarize'])
    for k, view in enumerate(views):
        rec.add_outputs(k, view)


def compare(a: Record, b: Record) -> Dict[str, float]:
    """p-value of every quantity of every view kind (``kind/quantity``)."""
    out = {}
    for kind in KINDS:
        for q in CONTINUOUS + CATEGORICAL:
            x, y = np.asarray(a.values[kind][q]), np.asarray(b.values[kind][q])
            if len(x) < 20 or len(y) < 20:
                # e.g. the radius of a never-blurred view: both must agree
                assert (len(x) < 20) == (len(y) < 20), (kind, q, len(x),
                                                          len(y))
                continue
            out[f'{kind}/{q}'] = _p_value(x, y, q in CATEGORICAL)
    return out


def _p_value(x: np.ndarray, y: np.ndarray, categorical: bool) -> float:
    if not categorical:
        return float(stats.ks_2samp(x, y).pvalue)
    cats = np.union1d(x, y)
    if len(cats) == 1:  # e.g. never solarized in both
        return 1.0
    table = np.array([[np.sum(x == c) for c in cats],
                      [np.sum(y == c) for c in cats]])
    return float(stats.chi2_contingency(table).pvalue)


def failures(p_values: Dict[str, float],
             alpha: float = ALPHA) -> Dict[str, float]:
    return {k: p for k, p in p_values.items() if p < alpha}

