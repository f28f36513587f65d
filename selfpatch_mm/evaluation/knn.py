# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Weighted k-NN classification of frozen features, as DINO's
``eval_knn.py`` (Caron et al., https://arxiv.org/abs/2104.14294), used to
evaluate SelfPatch (https://arxiv.org/abs/2201.06857) image features.

Each validation feature votes with its ``k`` most cosine-similar training
features; a neighbour's one-hot label is weighted by ``exp(sim / T)``.
"""
import os
import os.path as osp
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    'read_image_folder', 'knn_classify', 'extract_image_features',
    'center_crop_resize'
]

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                  '.tiff', '.webp')


def read_image_folder(
    root: str,
    classes: Optional[Sequence[str]] = None
) -> Tuple[List[str], List[int], List[str]]:
    """Image paths and labels of an ImageNet-style folder
    (``root/<class>/<image>``).

    Args:
        root (str): The folder.
        classes (Sequence[str], optional): Class names fixing the label ids
            (those of the training split); defaults to the sorted subfolders.

    Returns:
        tuple: ``(paths, labels, classes)``.

    Raises:
        FileNotFoundError: If ``root`` is missing or holds no image.
        ValueError: If ``root`` has a class that ``classes`` lacks.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'Image folder {root} does not exist.')
    found = sorted(d.name for d in os.scandir(root) if d.is_dir())
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ValueError(f'{root} has classes {unknown} that the training '
                         f'folder lacks (its classes: {list(classes)}).')
    index = {c: i for i, c in enumerate(classes)}
    paths, labels = [], []
    for cls in found:
        for dirpath, _, files in sorted(os.walk(osp.join(root, cls))):
            for name in sorted(files):
                if name.lower().endswith(IMG_EXTENSIONS):
                    paths.append(osp.join(dirpath, name))
                    labels.append(index[cls])
    if not paths:
        raise FileNotFoundError(
            f'No image in {root}: expected <class>/<image> files with one of '
            f'the extensions {IMG_EXTENSIONS}.')
    return paths, labels, list(classes)


def center_crop_resize(img: np.ndarray,
                       size: int,
                       patch_size: int,
                       resize_ratio: float = 256 / 224) -> np.ndarray:
    """DINO's evaluation transform: resize the short side to
    ``size * 256 / 224`` (bicubic), then centre-crop ``size`` (rounded down
    to a multiple of ``patch_size``)."""
    crop = size // patch_size * patch_size
    if crop == 0:
        raise ValueError(f'--size {size} is smaller than a patch '
                         f'({patch_size}).')
    h, w = img.shape[:2]
    short = max(int(round(size * resize_ratio)), crop)
    scale = short / min(h, w)
    nh, nw = max(crop, round(h * scale)), max(crop, round(w * scale))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_CUBIC)
    top, left = (nh - crop) // 2, (nw - crop) // 2
    return img[top:top + crop, left:left + crop]


@torch.no_grad()
def extract_image_features(
        paths: Sequence[str],
        load: Callable[[str], torch.Tensor],
        forward: Callable[[torch.Tensor], torch.Tensor],
        batch_size: int = 64,
        on_batch: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    """L2-normalised features ``(len(paths), C)``.

    Args:
        paths (Sequence[str]): Images.
        load (Callable): Path to a ``(3, H, W)`` tensor (all the same size).
        forward (Callable): ``(B, 3, H, W)`` to ``(B, C)`` features.
        batch_size (int): Images per forward.
        on_batch (Callable, optional): Called with the batch size after each
            batch (progress).
    """
    feats = []
    for start in range(0, len(paths), batch_size):
        batch = torch.stack([load(p) for p in paths[start:start + batch_size]])
        feats.append(F.normalize(forward(batch).float(), dim=1).cpu())
        if on_batch is not None:
            on_batch(batch.shape[0])
    return torch.cat(feats)


@torch.no_grad()
def knn_classify(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 val_feats: torch.Tensor,
                 val_labels: torch.Tensor,
                 k: int = 20,
                 temperature: float = 0.07,
                 num_classes: Optional[int] = None,
                 chunk: int = 256) -> Tuple[float, float]:
    """Top-1 and top-5 accuracy (%) of the weighted k-NN classifier.

    Args:
        train_feats (Tensor): ``(Nt, C)`` L2-normalised.
        train_labels (Tensor): ``(Nt,)`` long.
        val_feats (Tensor): ``(Nv, C)`` L2-normalised.
        val_labels (Tensor): ``(Nv,)`` long.
        k (int): Neighbours; clipped to ``Nt``.
        temperature (float): Vote weights are ``exp(sim / temperature)``.
        num_classes (int, optional): Defaults to ``max label + 1``.
        chunk (int): Validation features per similarity matmul.

    Returns:
        tuple[float, float]: Top-1 and top-5 accuracy in percent (top-5 is
        over ``min(5, k)`` predictions, as DINO).
    """
    if num_classes is None:
        num_classes = int(max(train_labels.max(), val_labels.max())) + 1
    k = min(k, train_feats.shape[0])
    top1 = top5 = 0
    for start in range(0, val_feats.shape[0], chunk):
        feats = val_feats[start:start + chunk]
        targets = val_labels[start:start + chunk]
        sim, idx = (feats @ train_feats.T).topk(k, dim=1)
        votes = F.one_hot(train_labels[idx], num_classes).float()
        probs = (votes * (sim / temperature).exp()[..., None]).sum(1)
        preds = probs.argsort(dim=1, descending=True)
        correct = preds.eq(targets[:, None])
        top1 += correct[:, :1].sum().item()
        top5 += correct[:, :min(5, k)].sum().item()
    n = val_feats.shape[0]
    return 100.0 * top1 / n, 100.0 * top5 / n
