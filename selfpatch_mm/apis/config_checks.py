"""Checks of a SelfPatch config before anything is built or loaded.

The model knows ``k``, the window, the border and the patch size; the crop
sizes live in the data pipeline. :func:`check_selfpatch_config` reads both
from the config, so a crop whose patch grid cannot hold the window fails at
start-up with the values named, not at the first iteration.
"""
from typing import Any, List, Tuple

__all__ = ['crop_sizes_from_pipeline', 'check_selfpatch_config']

# Transforms whose ``scale`` is an output crop size.
_CROP_TYPES = ('RandomResizedCrop', 'RandomCrop', 'CenterCrop')


def _type_name(cfg: dict) -> str:
    value = cfg.get('type', '')
    name = value if isinstance(value, str) else getattr(value, '__name__', '')
    return name.split('.')[-1]


def _size(value: Any) -> Tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[-1])


def crop_sizes_from_pipeline(pipeline: Any) -> List[Tuple[int, int]]:
    """The output crop sizes ``(h, w)`` a pipeline config produces.

    Looks, at any depth (``MultiView`` branches, ``RandomApply``...), for
    ``DINOMultiCrop``-style ``global_crop_size`` / ``local_crop_size`` and
    for the ``scale`` / ``crop_size`` of crop transforms.

    Args:
        pipeline (list | dict): A pipeline config.

    Returns:
        list[tuple[int, int]]: Distinct sizes, in the order found.
    """
    sizes: List[Tuple[int, int]] = []

    def add(value: Any) -> None:
        size = _size(value)
        if size not in sizes:
            sizes.append(size)

    def walk(node: Any) -> None:
        if isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for prefix in ('global', 'local'):
                if f'{prefix}_crop_size' in node and \
                        node.get(f'num_{prefix}_crops', 1):
                    add(node[f'{prefix}_crop_size'])
            if _type_name(node) in _CROP_TYPES:
                for key in ('scale', 'crop_size'):
                    if key in node and node[key] is not None:
                        add(node[key])
            for value in node.values():
                if isinstance(value, (list, tuple, dict)):
                    walk(value)

    walk(pipeline)
    return sizes


def check_selfpatch_config(cfg: Any) -> None:
    """Validate a SelfPatch model config against its training crops.

    Does nothing for other models. Checks ``k``, ``window`` and ``border``
    of the neck and, for every crop size of
    ``train_dataloader.dataset.pipeline`` that is a multiple of the patch
    size, that it gives a patch grid of at least 2x2 and at least the
    window (see :mod:`selfpatch_mm.models.utils.matching_checks`).

    Args:
        cfg (mmengine.Config): The full config.

    Raises:
        ValueError: Naming the value and its valid range.
    """
    from ..models.utils.matching_checks import (check_crop_grids,
                                                check_matching_settings)
    model = cfg.get('model') or {}
    if _type_name(model) != 'SelfPatch':
        return
    neck = model.get('neck') or {}
    k, window = neck.get('k', 4), neck.get('window', 3)
    check_matching_settings(k, window, neck.get('border', 'wrap'))
    if not model.get('with_patch_loss', True):
        return  # DINO: no matching, any grid works
    patch_size = (model.get('backbone') or {}).get('patch_size', 16)
    dataloader = cfg.get('train_dataloader') or {}
    pipeline = (dataloader.get('dataset') or {}).get('pipeline')
    if pipeline and isinstance(patch_size, int):
        # A size that is not a multiple of the patch size is left to the
        # backbone, whose error names the input and the patch size.
        sizes = [(h, w) for h, w in crop_sizes_from_pipeline(pipeline)
                 if h % patch_size == 0 and w % patch_size == 0]
        check_crop_grids(sizes, patch_size, window)
