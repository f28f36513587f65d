# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""DAVIS-2017 semi-supervised metrics: region similarity J and boundary F.

Follows the definitions of the DAVIS-2017 evaluation (Pont-Tuset et al.,
https://arxiv.org/abs/1704.00675; davisvideochallenge/davis2017-evaluation),
re-implemented here so no extra dependency is needed:

* J is the IoU of a predicted and an annotated object mask (1 when both are
  empty);
* F is the F-measure of boundary precision and recall: boundaries are
  one-pixel maps (Martin et al.'s ``seg2bmap``), and a boundary pixel counts
  as matched when the other boundary, dilated by a disk of radius
  ``ceil(0.008 * image diagonal)``, covers it;
* the first and the last frame of a sequence are not scored, each object is
  averaged over frames, and the means are taken over all objects.

Used by ``tools/analysis_tools/davis_label_propagation.py``, which evaluates
SelfPatch (https://arxiv.org/abs/2201.06857) features without fine-tuning.
"""
import math
import os.path as osp
from collections import OrderedDict
from glob import glob
from typing import Dict, Sequence

import cv2
import numpy as np
from PIL import Image

__all__ = [
    'region_similarity', 'boundary_map', 'boundary_f_measure', 'read_label',
    'evaluate_sequence', 'evaluate_davis', 'summarize_davis',
    'format_davis_table'
]

#: DAVIS marks pixels to ignore with 255; its evaluation counts them as
#: background, and so do we.
VOID_LABEL = 255


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """Jaccard index J of two binary masks (1.0 when both are empty).

    Args:
        pred (np.ndarray): Predicted mask ``(H, W)``, any dtype (non-zero is
            foreground).
        gt (np.ndarray): Annotated mask ``(H, W)``.

    Returns:
        float: ``|pred & gt| / |pred | gt|``.
    """
    if pred.shape != gt.shape:
        raise ValueError(f'Mask shapes differ: prediction {pred.shape} vs '
                         f'annotation {gt.shape}.')
    pred, gt = pred.astype(bool), gt.astype(bool)
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred & gt) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary of a binary mask (``seg2bmap``).

    A pixel is a boundary pixel when it differs from its east, south or
    south-east neighbour, so boundaries sit half a pixel towards the origin.
    The last row and column only compare along the image border.

    Args:
        mask (np.ndarray): Binary mask ``(H, W)``.

    Returns:
        np.ndarray: Boolean boundary map ``(H, W)``.
    """
    seg = mask.astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def _disk(radius: float) -> np.ndarray:
    """Disk structuring element, as ``skimage.morphology.disk``."""
    r = int(radius)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx**2 + yy**2 <= radius**2).astype(np.uint8)


def boundary_f_measure(pred: np.ndarray,
                       gt: np.ndarray,
                       bound_th: float = 0.008) -> float:
    """Boundary F-measure of two binary masks.

    Args:
        pred (np.ndarray): Predicted mask ``(H, W)``.
        gt (np.ndarray): Annotated mask ``(H, W)``.
        bound_th (float): Match tolerance: a fraction of the image diagonal
            when < 1, else pixels. Defaults to 0.008 (DAVIS).

    Returns:
        float: ``2PR / (P + R)`` (1.0 when both masks have no boundary).
    """
    if pred.shape != gt.shape:
        raise ValueError(f'Mask shapes differ: prediction {pred.shape} vs '
                         f'annotation {gt.shape}.')
    bound_pix = bound_th if bound_th >= 1 else math.ceil(
        bound_th * math.hypot(*pred.shape))
    pred_b, gt_b = boundary_map(pred), boundary_map(gt)
    disk = _disk(bound_pix)
    pred_dil = cv2.dilate(pred_b.astype(np.uint8), disk).astype(bool)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), disk).astype(bool)
    n_pred, n_gt = np.count_nonzero(pred_b), np.count_nonzero(gt_b)
    if n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_pred == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = np.count_nonzero(pred_b & gt_dil) / n_pred
        recall = np.count_nonzero(gt_b & pred_dil) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def read_label(path: str) -> np.ndarray:
    """Read an (indexed) PNG label map as ``(H, W)`` uint8 object ids.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the PNG is a colour image rather than an indexed or
            grey-level label map.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Label map {path} does not exist.')
    with Image.open(path) as img:
        if img.mode not in ('P', 'L', '1'):
            raise ValueError(
                f'{path} is a {img.mode!r} image; DAVIS labels must be '
                "indexed ('P') or grey-level ('L') PNGs holding object ids.")
        return np.array(img, dtype=np.uint8)


def evaluate_sequence(gt_dir: str,
                      res_dir: str,
                      bound_th: float = 0.008) -> Dict[str, np.ndarray]:
    """Per-frame J and F of every object of one sequence.

    The objects are the ids ``1..max`` of the first annotation. The first
    and the last frame are not scored (the first one is given, as in the
    DAVIS-2017 semi-supervised evaluation).

    Args:
        gt_dir (str): ``Annotations/480p/<seq>`` with ``<frame>.png``.
        res_dir (str): Result folder with a ``<frame>.png`` per annotation.
        bound_th (float): See :func:`boundary_f_measure`.

    Returns:
        dict: ``'J'`` and ``'F'``, arrays ``(num_objects, num_frames - 2)``,
        and ``'frames'``, the scored frame names.

    Raises:
        FileNotFoundError: If an annotation folder is empty or a result is
            missing.
        ValueError: If a result uses object ids the annotation lacks, or has
            another size than its annotation.
    """
    gt_paths = sorted(glob(osp.join(gt_dir, '*.png')))
    if not gt_paths:
        raise FileNotFoundError(f'No annotation PNGs in {gt_dir}.')
    first = read_label(gt_paths[0])
    num_objects = int(np.max(np.where(first == VOID_LABEL, 0, first)))
    scored = gt_paths[1:-1]
    j_res = np.zeros((num_objects, len(scored)))
    f_res = np.zeros((num_objects, len(scored)))
    for t, gt_path in enumerate(scored):
        name = osp.basename(gt_path)
        res_path = osp.join(res_dir, name)
        if not osp.isfile(res_path):
            raise FileNotFoundError(
                f'Result {res_path} is missing: write one PNG per annotated '
                f'frame of {gt_dir}.')
        gt = read_label(gt_path)
        gt = np.where(gt == VOID_LABEL, 0, gt)
        res = read_label(res_path)
        if res.shape != gt.shape:
            raise ValueError(f'{res_path} is {res.shape[1]}x{res.shape[0]} '
                             f'but its annotation is {gt.shape[1]}x'
                             f'{gt.shape[0]}: save results at full size.')
        if res.max() > num_objects:
            raise ValueError(f'{res_path} holds object id {res.max()}, but '
                             f'the sequence has {num_objects} objects.')
        for obj in range(num_objects):
            j_res[obj, t] = region_similarity(res == obj + 1, gt == obj + 1)
            f_res[obj, t] = boundary_f_measure(res == obj + 1, gt == obj + 1,
                                               bound_th)
    return dict(J=j_res, F=f_res, frames=[osp.basename(p) for p in scored])


def evaluate_davis(gt_root: str,
                   res_root: str,
                   sequences: Sequence[str],
                   bound_th: float = 0.008) -> 'OrderedDict[str, dict]':
    """:func:`evaluate_sequence` for each sequence.

    Args:
        gt_root (str): Folder of per-sequence annotation folders
            (``DAVIS/Annotations/480p``).
        res_root (str): Folder of per-sequence result folders.
        sequences (Sequence[str]): Sequence names.
        bound_th (float): See :func:`boundary_f_measure`.

    Returns:
        OrderedDict[str, dict]: Sequence name to its per-frame results.
    """
    return OrderedDict(
        (seq,
         evaluate_sequence(
             osp.join(gt_root, seq), osp.join(res_root, seq), bound_th))
        for seq in sequences)


def summarize_davis(results: Dict[str, dict]) -> Dict[str, object]:
    """Per-object means and the global DAVIS scores.

    Args:
        results (dict): Output of :func:`evaluate_davis`.

    Returns:
        dict: ``'per_object'`` (list of ``(name, J-Mean, F-Mean)`` with names
        ``<seq>_<id>``), and the means over objects ``'J&F-Mean'``,
        ``'J-Mean'``, ``'J-Recall'``, ``'F-Mean'``, ``'F-Recall'`` (recall =
        fraction of frames scoring above 0.5).
    """
    per_object, j_means, f_means, j_recalls, f_recalls = [], [], [], [], []
    for seq, res in results.items():
        for obj, (j, f) in enumerate(zip(res['J'], res['F'])):
            # A two-frame sequence has no scored frames: nan, as DAVIS.
            jm = float(np.mean(j)) if j.size else float('nan')
            fm = float(np.mean(f)) if f.size else float('nan')
            per_object.append((f'{seq}_{obj + 1}', jm, fm))
            j_means.append(jm)
            f_means.append(fm)
            j_recalls.append(float(np.mean(j > 0.5)) if j.size else jm)
            f_recalls.append(float(np.mean(f > 0.5)) if f.size else fm)
    if not per_object:
        raise ValueError('No object to score: the first annotations of all '
                         'sequences are empty.')
    j_mean, f_mean = float(np.nanmean(j_means)), float(np.nanmean(f_means))
    return {
        'per_object': per_object,
        'J&F-Mean': (j_mean + f_mean) / 2,
        'J-Mean': j_mean,
        'J-Recall': float(np.nanmean(j_recalls)),
        'F-Mean': f_mean,
        'F-Recall': float(np.nanmean(f_recalls)),
    }


def format_davis_table(summary: Dict[str, object]) -> str:
    """A text table: one row per object, then the global means.

    Args:
        summary (dict): Output of :func:`summarize_davis`.

    Returns:
        str: The table.
    """
    rows = summary['per_object']
    width = max([len('Sequence')] + [len(r[0]) for r in rows])
    lines = [f'{"Sequence":<{width}}  J-Mean  F-Mean']
    lines += [f'{name:<{width}}  {j:6.4f}  {f:6.4f}' for name, j, f in rows]
    keys = ('J&F-Mean', 'J-Mean', 'J-Recall', 'F-Mean', 'F-Recall')
    lines.append('')
    lines.append('  '.join(f'{k:>8}' for k in keys))
    lines.append('  '.join(f'{summary[k]:8.4f}' for k in keys))
    return '\n'.join(lines)
