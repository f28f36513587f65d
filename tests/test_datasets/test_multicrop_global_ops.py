"""The ops that only the global views have, or have at their own rate
(solarize, blur, grayscale on the two global views), against the official
probabilities, with enough draws to see a 20% change.

The two-sample tests of test_multicrop_distribution.py see 800 views of
each global kind, against 6,400 local ones: their chi-square test at
alpha = 1e-3 catches a 20% change of a global rate (0.2 -> 0.24 or 0.16,
0.1 -> 0.12 or 0.08) with a probability of only about 0.02-0.11. Here
each path draws the parameters of N = 10,000 images (the crops and
photometric parameters, not the pixels), so 10,000 views of each global
kind and 80,000 local ones, and an exact one-sample binomial test at
alpha = 1e-3 compares every rate with the official one. Its power against
a 20% change, computed from the binomial distribution (acceptance region
of the two-sided exact test at 1e-3, then its probability under the
changed rate): 0.999 for the second view's blur (0.1 -> 0.12; 0.9999 for
0.08), above 0.99999 for solarize and grayscale (0.2 -> 0.24 or 0.16) and
for the local rates. Rates of 0 or 1 must hold exactly.

The official rates: ``DataAugmentationDINO`` of facebookresearch/dino
``main_dino.py`` (the one alinlab/SelfPatch ``main_selfpatch.py`` uses):
``global_transfo1`` GaussianBlur(1.0); ``global_transfo2``
GaussianBlur(0.1), Solarization(0.2); ``local_transfo`` GaussianBlur(p=0.5);
RandomGrayscale(p=0.2) in the shared ``flip_and_color_jitter``.
"""
import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS, TRANSFORMS
from scipy import stats

import selfpatch_mm.datasets  # noqa: F401
import selfpatch_mm.models  # noqa: F401

N = 10_000
ALPHA = 1e-3
NUM_LOCAL = 8
OFFICIAL = {  # kind: (grayscale, blur, solarize)
    'global1': dict(gray=0.2, blur=1.0, solarize=0.0),
    'global2': dict(gray=0.2, blur=0.1, solarize=0.2),
    'local': dict(gray=0.2, blur=0.5, solarize=0.0),
}
MULTICROP = dict(type='DINOMultiCrop', global_crop_size=32,
                 local_crop_size=16, num_local_crops=NUM_LOCAL)


def _kinds(flags: np.ndarray) -> dict:
    """Split ``(N, views)`` flags into the three view kinds."""
    return dict(global1=flags[:, 0], global2=flags[:, 1],
                local=flags[:, 2:].ravel())


def cpu_draws(seed: int = 0) -> dict:
    """``DINOMultiCrop._sample`` (the CPU path) for N images."""
    np.random.seed(seed)
    crop = TRANSFORMS.build(MULTICROP)
    params = [crop._sample(120, 160) for _ in range(N)]
    return {op: _kinds(np.stack([p[op] for p in params]).astype(bool))
            for op in ('gray', 'blur', 'solarize')}


def device_draws(seed: int = 0) -> dict:
    """``MultiCropDataPreprocessor`` drawing the photometric parameters of
    ``DINOMultiCrop(photometric='device')`` (the GPU path) for N images;
    tiny blank views, only the parameters are looked at."""
    torch.manual_seed(seed)
    crop = TRANSFORMS.build(dict(MULTICROP, photometric='device'))
    pre = MODELS.build(dict(type='MultiCropDataPreprocessor', mean=[0] * 3,
                            std=[1] * 3, record_params=True))
    views = [torch.zeros(N, 3, 8, 8)] * 2 + [torch.zeros(N, 3, 4, 4)
                                             ] * NUM_LOCAL
    pre._photometric(views, crop.photometric_cfg)
    out = {op: np.zeros((N, 2 + NUM_LOCAL), bool)
           for op in ('gray', 'blur', 'solarize')}
    for group in pre.last_params:  # rows are view-major in a group
        for g, k in enumerate(group['views']):
            for op in out:
                out[op][:, k] = group[op][g * N:(g + 1) * N].numpy()
    return {op: _kinds(flags) for op, flags in out.items()}


def off_rates(draws: dict) -> dict:
    """``kind/op``: the drawn rate and the p-value against the official
    one, for every rate that is off (p < ALPHA, or not exactly 0 or 1)."""
    bad = {}
    for kind, rates in OFFICIAL.items():
        for op, p0 in rates.items():
            flags = draws[op][kind]
            k, n = int(flags.sum()), flags.size
            if p0 in (0.0, 1.0):
                ok = k == round(p0 * n)
                p = float(ok)
            else:
                p = stats.binomtest(k, n, p0).pvalue
                ok = p >= ALPHA
            if not ok:
                bad[f'{kind}/{op}'] = (k / n, p)
    return bad


@pytest.mark.parametrize('draw', [cpu_draws, device_draws],
                         ids=['cpu', 'device'])
def test_global_op_rates_are_official(draw):
    assert not off_rates(draw()), off_rates(draw())


def test_a_20_percent_change_is_detected(monkeypatch):
    """A 20% change of the second global view's blur (0.1 -> 0.12) and
    solarize rate (0.2 -> 0.24), and of the grayscale rate (0.2 -> 0.16),
    each fail their test (one draw with all three changed)."""
    monkeypatch.setitem(
        globals(), 'MULTICROP',
        dict(MULTICROP, global_blur_prob=(1.0, 0.12),
             global_solarize_prob=(0.0, 0.24), grayscale_prob=0.16))
    bad = off_rates(cpu_draws())
    assert {'global2/blur', 'global2/solarize', 'global1/gray',
            'global2/gray', 'local/gray'} == set(bad), bad
