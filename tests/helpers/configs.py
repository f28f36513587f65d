# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Model and config settings the tests share."""
from pathlib import Path
from typing import Dict

from .tools import REPO_ROOT

__all__ = ['DEMO_CONFIG', 'DEMO_VIT_ARCH', 'TINY_DENSE_VIT', 'derive_config']

#: The demo recipe (a tiny ViT on the generated demo images).
DEMO_CONFIG = str(REPO_ROOT / 'configs' / 'selfpatch' /
                  'selfpatch_vit-tiny-p8_1xb8-2e_demo.py')

#: The ViT of the demo config (96-d, 4 blocks, 3 heads), as an ``arch``.
DEMO_VIT_ARCH = dict(
    embed_dims=96, num_layers=4, num_heads=3, feedforward_channels=384)
#: :class:`SelfPatchDenseViT` settings of the tests: the demo ViT at 64 px,
#: patch 8, every block an output, plain BN (CPU).
TINY_DENSE_VIT = dict(
    arch=DEMO_VIT_ARCH,
    img_size=64,
    patch_size=8,
    out_indices=(0, 1, 2, 3),
    norm_cfg=dict(type='BN'))


def derive_config(src: Path, dst: Path, options: Dict[str, object]) -> Path:
    """Write ``src`` with a few settings changed to ``dst``, instead of
    re-typing its pipelines in a test.

    Args:
        src (Path): A config file (bases resolved).
        dst (Path): The ``.py`` file written.
        options (dict): ``--cfg-options``-style keys, list items by index
            (``'train_dataloader.dataset.pipeline.3.scale'``).

    Returns:
        Path: ``dst``.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(str(src))
    cfg.merge_from_dict(options)
    cfg.dump(str(dst))
    return Path(dst)
