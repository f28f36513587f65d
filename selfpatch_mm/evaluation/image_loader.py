# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Images for the picture tools, from Runner parts: an mmpretrain
``CustomDataset`` over a list file (or a folder) read by
``Runner.build_dataloader``, decoded by mmcv's ``LoadImageFromFile`` (BGR,
the pixels of ``cv2.imread``)."""
import os
import os.path as osp
from typing import Iterator, List, Tuple

import numpy as np

__all__ = [
    'ordered_loader', 'list_images', 'build_image_loader', 'iter_images'
]


def ordered_loader(dataset: dict,
                   batch_size: int = 1,
                   num_workers: int = 0,
                   collate: str = 'pseudo_collate'):
    """An unshuffled ``Runner.build_dataloader`` loader of an mmpretrain
    dataset config, as the evaluation tools read their data.

    Args:
        dataset (dict): Dataset config (``type='mmpretrain.<Dataset>'``).
        batch_size (int): Samples per batch.
        num_workers (int): Loading processes (0: in this process).
        collate (str): mmengine collate function: ``'pseudo_collate'``
            (per-key lists of raw results) or ``'default_collate'``.

    Returns:
        torch.utils.data.DataLoader: In dataset order.
    """
    import mmpretrain.datasets  # noqa: F401  (registers the datasets)
    from mmengine.runner import Runner
    return Runner.build_dataloader(
        dict(
            batch_size=batch_size,
            num_workers=num_workers,
            persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type=collate),
            dataset=dataset))


def list_images(path: str, list_file: str) -> List[str]:
    """Write the images to picture into ``list_file``, one absolute path a
    line (the dataset's annotation file, and a record of the run).

    Args:
        path (str): An image, or a folder searched recursively for
            ``.jpg .jpeg .png .bmp`` files.
        list_file (str): The file written.

    Returns:
        list[str]: The absolute image paths, sorted for a folder.

    Raises:
        FileNotFoundError: If ``path`` is neither an image nor a folder with
            images.
    """
    path = osp.abspath(path)
    if osp.isdir(path):
        exts = ('.jpg', '.jpeg', '.png', '.bmp')
        images = sorted(
            osp.join(root, name) for root, _, names in os.walk(path)
            for name in names if name.lower().endswith(exts))
    else:
        images = [path] if osp.isfile(path) else []
    if not images:
        raise FileNotFoundError(f'No image at {path} (a file, or a folder '
                                'with .jpg/.jpeg/.png/.bmp files).')
    os.makedirs(osp.dirname(osp.abspath(list_file)), exist_ok=True)
    with open(list_file, 'w') as f:
        f.writelines(f'{p}\n' for p in images)
    return images


def build_image_loader(list_file: str, num_workers: int = 0):
    """An ordered loader of the images named in ``list_file``.

    Args:
        list_file (str): Absolute paths, one a line (:func:`list_images`).
        num_workers (int): Loading processes.

    Returns:
        torch.utils.data.DataLoader: Batches of one image,
        ``pseudo_collate``d (``img_path`` and BGR uint8 ``img`` lists).
    """
    return ordered_loader(
        dict(
            type='mmpretrain.CustomDataset',
            data_prefix='',  # the list holds absolute paths
            ann_file=list_file,
            with_label=False,
            pipeline=[dict(type='LoadImageFromFile')]),
        num_workers=num_workers)


def iter_images(loader) -> Iterator[Tuple[str, np.ndarray]]:
    """``(path, image)`` pairs of a :func:`build_image_loader` loader."""
    for batch in loader:  # pseudo_collate: a dict of per-key lists
        yield from zip(batch['img_path'], batch['img'])
