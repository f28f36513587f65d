# Copyright (c) selfpatch_mm contributors. All rights reserved.
from typing import Dict, List, Optional

import numpy as np
import torch
from mmpretrain.models.utils import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS

from selfpatch_mm.datasets.transforms.multicrop_sampling import (
    PHOTOMETRIC_UNIFORMS, sample_photometric)
from .batched_photometric import apply_photometric

__all__ = ['MultiCropDataPreprocessor']


@MODELS.register_module()
class MultiCropDataPreprocessor(SelfSupDataPreprocessor):
    """``SelfSupDataPreprocessor`` that can finish DINO's multi-crop on the
    device.

    With ``DINOMultiCrop(photometric='device')`` the CPU workers only
    decode, crop, resize and flip; each sample then carries the photometric
    settings in its metainfo (``multicrop_photometric``), and this module
    applies colour jitter, grayscale, blur and solarize to the batch on the
    device, between the uint8-to-float cast and the normalisation, with
    new random parameters for every view of every image (torch's global
    RNG on the batch's device, which mmengine seeds). Views of the same
    size are processed together. Without that metainfo (the default
    ``photometric='cpu'``) it is exactly ``SelfSupDataPreprocessor``.

    Args:
        record_params (bool): Keep the last batch's sampled parameters in
            ``last_params`` (for tests). Defaults to False.
        **kwargs: ``SelfSupDataPreprocessor`` arguments.
    """

    def __init__(self, record_params: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.record_params = record_params
        self.last_params: Optional[List[Dict[str, torch.Tensor]]] = None

    @staticmethod
    def _deferred_cfg(data_samples) -> Optional[Dict]:
        """The photometric settings the samples still need, if any."""
        if not data_samples:
            return None
        meta = getattr(data_samples[0], 'metainfo', {})
        return meta.get('multicrop_photometric')

    def _photometric(self, views: List[torch.Tensor],
                     cfg: Dict) -> List[torch.Tensor]:
        """Augment ``views`` (float RGB, [0, 255]) per view and image."""
        num_views = len(cfg['blur_prob'])
        if len(views) != num_views:
            raise ValueError(
                f'MultiCropDataPreprocessor: the batch has {len(views)} '
                f'views but DINOMultiCrop described {num_views}.')
        out = list(views)
        self.last_params = [] if self.record_params else None
        # one pass per resolution (the global views, the local views)
        groups: Dict[tuple, List[int]] = {}
        for k, v in enumerate(views):
            groups.setdefault(tuple(v.shape[1:]), []).append(k)
        for ks in groups.values():
            batch = views[ks[0]].shape[0]
            x = torch.cat([views[k] for k in ks])
            device = x.device

            def per_row(key):
                values = torch.tensor([cfg[key][k] for k in ks],
                                      device=device)
                return values.repeat_interleave(batch)

            u = torch.rand((x.shape[0], PHOTOMETRIC_UNIFORMS), device=device,
                           dtype=torch.float64)
            p = sample_photometric(u, np.asarray(cfg['ranges']),
                                   cfg['jitter_prob'], cfg['grayscale_prob'],
                                   per_row('blur_prob'),
                                   per_row('solarize_prob'),
                                   cfg['blur_radius'])
            p['factors'] = p['factors'].to(x.dtype)
            p['radius'] = p['radius'].to(x.dtype)
            y = apply_photometric(x, p, max(cfg['blur_radius']),
                                  cfg['solarize_threshold'])
            for k, chunk in zip(ks, y.split(batch)):
                out[k] = chunk
            if self.record_params:
                self.last_params.append(dict(p, views=ks))
        return out

    def forward(self, data: dict, training: bool = False) -> dict:
        """Cast, convert BGR to RGB, (photometric), normalise.

        Args:
            data (dict): A collated batch (``default_collate``).
            training (bool): Unused; the deferred photometric stage runs
                whenever the samples ask for it.

        Returns:
            dict: ``inputs`` (list of normalised float views, or a tensor)
            and ``data_samples``.
        """
        cfg = self._deferred_cfg(data.get('data_samples'))
        if cfg is None or not isinstance(data.get('inputs'), list):
            return super().forward(data, training)
        inputs, data_samples = self.cast_data(
            [data['inputs'], data.get('data_samples')])
        if self._channel_conversion:
            inputs = [v[:, [2, 1, 0], ...] for v in inputs]
        inputs = self._photometric([v.float() for v in inputs], cfg)
        if self._enable_normalize:
            inputs = [(v - self.mean) / self.std for v in inputs]
        return {'inputs': inputs, 'data_samples': data_samples}
