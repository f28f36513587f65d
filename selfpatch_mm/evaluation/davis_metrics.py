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
  averaged over frames, and the means are taken over all objects;
* recall is the fraction of frames scoring above 0.5 and decay the mean of
  the first minus the mean of the last of four overlapping quantile bins of
  the frames (``davis2017/utils.py: db_statistics``);
* :func:`write_davis_csv` writes ``global_results-<split>.csv`` and
  ``per-sequence_results-<split>.csv`` as ``evaluation_method.py`` does.

Used by ``tools/analysis_tools/davis_label_propagation.py``, which evaluates
SelfPatch (https://arxiv.org/abs/2206.07990) features without fine-tuning.
"""
import math
import multiprocessing
import os
import os.path as osp
import warnings
from collections import OrderedDict
from glob import glob
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

__all__ = [
    'region_similarity', 'boundary_map', 'boundary_f_measure', 'read_label',
    'evaluate_sequence', 'evaluate_davis', 'summarize_davis',
    'format_davis_table', 'db_statistics', 'write_davis_csv',
    'GLOBAL_COLUMNS', 'SEQUENCE_COLUMNS'
]

#: Columns of davis2017-evaluation's ``global_results-<split>.csv`` ...
GLOBAL_COLUMNS = ('J&F-Mean', 'J-Mean', 'J-Recall', 'J-Decay', 'F-Mean',
                  'F-Recall', 'F-Decay')
#: ... and of its ``per-sequence_results-<split>.csv`` (one row per object).
SEQUENCE_COLUMNS = ('Sequence', 'J-Mean', 'F-Mean')

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


def _evaluate_one(args: Tuple[str, str, float]) -> Dict[str, np.ndarray]:
    """Pool worker: :func:`evaluate_sequence` of one argument tuple."""
    # One OpenCV thread per worker: the processes already use the cores.
    cv2.setNumThreads(1)
    return evaluate_sequence(*args)


def evaluate_davis(gt_root: str,
                   res_root: str,
                   sequences: Sequence[str],
                   bound_th: float = 0.008,
                   nproc: int = 1) -> 'OrderedDict[str, dict]':
    """:func:`evaluate_sequence` for each sequence.

    Args:
        gt_root (str): Folder of per-sequence annotation folders
            (``DAVIS/Annotations/480p``).
        res_root (str): Folder of per-sequence result folders.
        sequences (Sequence[str]): Sequence names.
        bound_th (float): See :func:`boundary_f_measure`.
        nproc (int): Sequences scored in parallel processes. The scores do
            not depend on it.

    Returns:
        OrderedDict[str, dict]: Sequence name to its per-frame results, in
        the order of ``sequences``.
    """
    jobs = [(osp.join(gt_root, seq), osp.join(res_root, seq), bound_th)
            for seq in sequences]
    nproc = max(1, min(nproc, len(jobs)))
    if nproc == 1:
        outs = [evaluate_sequence(*job) for job in jobs]
    else:
        # Not fork: a child forked after the parent ran OpenCV or torch
        # thread pools can deadlock in them (seen after the patch-picture
        # tool in one process). A forkserver imports this module once and
        # forks the workers from that clean process.
        if 'forkserver' in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context('forkserver')
            ctx.set_forkserver_preload([__name__])
        else:
            ctx = multiprocessing.get_context('spawn')
        with ctx.Pool(nproc) as pool:
            outs = pool.map(_evaluate_one, jobs, chunksize=1)
    return OrderedDict(zip(sequences, outs))


def db_statistics(values: np.ndarray) -> Tuple[float, float, float]:
    """Mean, recall and decay of one object's per-frame scores, as
    davis2017-evaluation's ``utils.db_statistics``.

    Recall is the fraction of frames scoring strictly above 0.5. Decay is
    ``mean(bin 0) - mean(bin 3)`` of four bins cut at
    ``round(linspace(1, n, 5)) - 1``; neighbouring bins share their edge
    frame (slices ``ids[i]:ids[i + 1] + 1``).

    Args:
        values (np.ndarray): ``(num_frames, )`` scores (J or F).

    Returns:
        tuple[float, float, float]: ``(mean, recall, decay)``; nan for no
        frame.
    """
    values = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        # An empty or all-nan array gives nan, as in the reference.
        warnings.simplefilter('ignore', category=RuntimeWarning)
        mean = float(np.nanmean(values))
        recall = float(np.nanmean(values > 0.5))
        # The reference casts the ids to uint8, which wraps for sequences
        # of more than 256 frames; int64 gives the same bins below that.
        ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) -
               1).astype(np.int64)
        bins = [values[ids[i]:ids[i + 1] + 1] for i in range(4)]
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay


def summarize_davis(results: Dict[str, dict]) -> Dict[str, object]:
    """Per-object means and the global DAVIS scores.

    Args:
        results (dict): Output of :func:`evaluate_davis`.

    Returns:
        dict: ``'per_object'`` (list of ``(name, J-Mean, F-Mean)`` with names
        ``<seq>_<id>``), and the means over objects of the columns of
        :data:`GLOBAL_COLUMNS` (see :func:`db_statistics`).
    """
    per_object: List[tuple] = []
    stats: Dict[str, List[float]] = {k: [] for k in GLOBAL_COLUMNS[1:]}
    for seq, res in results.items():
        for obj, (j, f) in enumerate(zip(res['J'], res['F'])):
            # The means stay np.mean (not db_statistics' nanmean) so that
            # J&F stays bit-identical to what it was; both agree unless a
            # frame is nan, which J and F never are.
            # A two-frame sequence has no scored frames: nan, as DAVIS.
            jm = float(np.mean(j)) if j.size else float('nan')
            fm = float(np.mean(f)) if f.size else float('nan')
            per_object.append((f'{seq}_{obj + 1}', jm, fm))
            _, j_recall, j_decay = db_statistics(j)
            _, f_recall, f_decay = db_statistics(f)
            for key, value in (('J-Mean', jm), ('J-Recall', j_recall),
                               ('J-Decay', j_decay), ('F-Mean', fm),
                               ('F-Recall', f_recall), ('F-Decay', f_decay)):
                stats[key].append(value)
    if not per_object:
        raise ValueError('No object to score: the first annotations of all '
                         'sequences are empty.')
    summary: Dict[str, object] = {'per_object': per_object}
    means = {k: float(np.nanmean(v)) for k, v in stats.items()}
    summary['J&F-Mean'] = (means['J-Mean'] + means['F-Mean']) / 2
    summary.update(means)
    return summary


def _csv_number(value: float) -> str:
    """pandas' ``to_csv(float_format='%.3f')`` text of a number (nan is
    an empty field)."""
    return '' if math.isnan(value) else f'{value:.3f}'


def write_davis_csv(summary: Dict[str, object],
                    out_dir: str,
                    split: str = 'val') -> Tuple[str, str]:
    """Write the two CSV files of davis2017-evaluation's
    ``evaluation_method.py``: ``global_results-<split>.csv`` (the columns
    of :data:`GLOBAL_COLUMNS`, one row) and
    ``per-sequence_results-<split>.csv`` (:data:`SEQUENCE_COLUMNS`, one row
    per object), numbers with three decimals.

    Args:
        summary (dict): Output of :func:`summarize_davis`.
        out_dir (str): Folder (the results folder, as the reference).
        split (str): Name used in the file names.

    Returns:
        tuple[str, str]: The global and the per-sequence file paths.
    """
    os.makedirs(out_dir, exist_ok=True)
    global_path = osp.join(out_dir, f'global_results-{split}.csv')
    seq_path = osp.join(out_dir, f'per-sequence_results-{split}.csv')
    with open(global_path, 'w', encoding='utf-8') as f:
        f.write(','.join(GLOBAL_COLUMNS) + '\n')
        f.write(','.join(_csv_number(summary[k])
                         for k in GLOBAL_COLUMNS) + '\n')
    with open(seq_path, 'w', encoding='utf-8') as f:
        f.write(','.join(SEQUENCE_COLUMNS) + '\n')
        for name, j, fm in summary['per_object']:
            f.write(f'{name},{_csv_number(j)},{_csv_number(fm)}\n')
    return global_path, seq_path


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
    lines.append('')
    lines.append('  '.join(f'{k:>8}' for k in GLOBAL_COLUMNS))
    lines.append('  '.join(f'{summary[k]:8.4f}' for k in GLOBAL_COLUMNS))
    return '\n'.join(lines)
