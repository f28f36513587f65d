# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Weighted k-NN classification of frozen features, as DINO's
``eval_knn.py`` (Caron et al., https://arxiv.org/abs/2104.14294), used to
evaluate SelfPatch (https://arxiv.org/abs/2206.07990) image features.

Each validation feature votes with its ``k`` most cosine-similar training
features; a neighbour's one-hot label is weighted by ``exp(sim / T)``.

Images come through mmpretrain datasets (``CustomDataset``: an
ImageNet-style folder or an annotation file) and an mmengine dataloader
with workers, preprocessed as the official evaluation (:data:`KNN_PIPELINE`:
PIL bicubic resize of the short side to 256, which antialiases, a centre
crop of 224, then ImageNet normalisation in the data preprocessor).
"""
import copy
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .image_loader import ordered_loader

__all__ = [
    'KNN_PIPELINE', 'knn_pipeline', 'build_knn_dataloader',
    'extract_features', 'knn_classify', 'knn_classify_multi'
]

#: torchvision's ``Resize(256, interpolation=3)`` on a PIL image,
#: ``CenterCrop(224)``, as DINO's ``eval_knn.py``; images are decoded by PIL
#: too. ``ToTensor`` + ``Normalize`` is the data preprocessor's job.
KNN_PIPELINE = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]


def knn_pipeline(resize: int = 256, crop: int = 224) -> List[dict]:
    """:data:`KNN_PIPELINE` with another resize and crop size.

    Args:
        resize (int): Short side after resizing.
        crop (int): Centre crop size.

    Returns:
        list[dict]: mmpretrain transform configs.
    """
    pipeline = copy.deepcopy(KNN_PIPELINE)
    pipeline[1]['scale'] = resize
    pipeline[2]['crop_size'] = crop
    return pipeline


def build_knn_dataloader(data_prefix: str,
                         ann_file: str = '',
                         pipeline: Optional[Sequence[dict]] = None,
                         batch_size: int = 64,
                         num_workers: int = 4,
                         dataset_type: str = 'CustomDataset'):
    """An unshuffled dataloader of a labelled mmpretrain dataset.

    Args:
        data_prefix (str): Image folder (``<class>/<image>`` when
            ``ann_file`` is empty).
        ann_file (str): Optional annotation file of ``<path> <label>`` lines,
            paths relative to ``data_prefix``.
        pipeline (Sequence[dict], optional): Defaults to
            :data:`KNN_PIPELINE`.
        batch_size (int): Images per batch.
        num_workers (int): Loading processes (0: in this process).
        dataset_type (str): An mmpretrain dataset taking ``data_prefix`` and
            ``ann_file`` (``CustomDataset``, ``ImageNet``, ...).

    Returns:
        torch.utils.data.DataLoader: Built by ``Runner.build_dataloader``.
    """
    dataset = dict(
        type=f'mmpretrain.{dataset_type}',
        data_prefix=data_prefix,
        ann_file=ann_file,
        pipeline=list(pipeline or KNN_PIPELINE))
    return ordered_loader(dataset, batch_size, num_workers,
                          collate='default_collate')


@torch.no_grad()
def extract_features(
    loader,
    preprocessor: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    on_batch: Optional[Callable[[int], None]] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised features and labels of every image of a loader.

    Args:
        loader: A dataloader of packed mmpretrain samples, in order.
        preprocessor (nn.Module): ``ClsDataPreprocessor`` (normalisation).
        forward (Callable): ``(B, 3, H, W)`` to ``(B, C)`` features.
        on_batch (Callable, optional): Called with the batch size after each
            batch (progress).

    Returns:
        tuple[Tensor, Tensor]: ``(N, C)`` float features and ``(N,)`` long
        labels, on the CPU.
    """
    feats, labels = [], []
    for data in loader:
        data = preprocessor(data, False)
        feats.append(F.normalize(forward(data['inputs']).float(), dim=1).cpu())
        labels += [int(s.gt_label) for s in data['data_samples']]
        if on_batch is not None:
            on_batch(len(data['data_samples']))
    return torch.cat(feats), torch.tensor(labels, dtype=torch.long)


@torch.no_grad()
def knn_classify_multi(train_feats: torch.Tensor,
                       train_labels: torch.Tensor,
                       val_feats: torch.Tensor,
                       val_labels: torch.Tensor,
                       ks: Sequence[int] = (10, 20, 100, 200),
                       temperature: float = 0.07,
                       num_classes: Optional[int] = None,
                       chunk: int = 128) -> Dict[int, Tuple[float, float]]:
    """Top-1 and top-5 accuracy (%) of the weighted k-NN classifier for
    several ``k`` from one similarity computation: the neighbours of the
    largest ``k`` are sorted, so each smaller ``k`` takes their head.

    Args:
        train_feats (Tensor): ``(Nt, C)`` L2-normalised.
        train_labels (Tensor): ``(Nt,)`` long.
        val_feats (Tensor): ``(Nv, C)`` L2-normalised.
        val_labels (Tensor): ``(Nv,)`` long.
        ks (Sequence[int]): Neighbour counts; each is clipped to ``Nt``.
        temperature (float): Vote weights are ``exp(sim / temperature)``.
        num_classes (int, optional): Defaults to ``max label + 1``.
        chunk (int): Validation features per similarity matmul.

    Returns:
        dict[int, tuple[float, float]]: ``k`` (as given) to top-1 and top-5
        accuracy in percent (top-5 is over ``min(5, k)`` predictions, as
        DINO).
    """
    if num_classes is None:
        num_classes = int(max(train_labels.max(), val_labels.max())) + 1
    ks = list(ks)
    max_k = min(max(ks), train_feats.shape[0])
    hits = {k: [0, 0] for k in ks}
    for start in range(0, val_feats.shape[0], chunk):
        feats = val_feats[start:start + chunk]
        targets = val_labels[start:start + chunk]
        sim, idx = (feats @ train_feats.T).topk(max_k, dim=1)
        # Vote weights once for the largest k; cumulative sums over the
        # neighbour axis give the class scores of every smaller k.
        votes = F.one_hot(train_labels[idx], num_classes).float()
        scores = (votes * (sim / temperature).exp()[..., None]).cumsum(1)
        for k in ks:
            kk = min(k, max_k)
            preds = scores[:, kk - 1].argsort(dim=1, descending=True)
            correct = preds.eq(targets[:, None])
            hits[k][0] += correct[:, :1].sum().item()
            hits[k][1] += correct[:, :min(5, kk)].sum().item()
    n = val_feats.shape[0]
    return {
        k: (100.0 * h1 / n, 100.0 * h5 / n)
        for k, (h1, h5) in hits.items()
    }


def knn_classify(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 val_feats: torch.Tensor,
                 val_labels: torch.Tensor,
                 k: int = 20,
                 temperature: float = 0.07,
                 num_classes: Optional[int] = None,
                 chunk: int = 128) -> Tuple[float, float]:
    """:func:`knn_classify_multi` for one ``k``.

    Returns:
        tuple[float, float]: Top-1 and top-5 accuracy in percent.
    """
    return knn_classify_multi(train_feats, train_labels, val_feats,
                              val_labels, [k], temperature, num_classes,
                              chunk)[k]
