# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Label propagation over the sequences of a DAVIS-2017 folder, in one
process or in several (``nproc``), for the SelfPatch
(https://arxiv.org/abs/2206.07990) evaluation without fine-tuning.

Each worker process loads the model once and segments whole sequences;
sequences are independent, so the written PNGs do not depend on ``nproc``
beyond floating-point reduction order (each worker uses
``cpu_count // nproc`` threads). The frames of a sequence are an mmpretrain
``CustomDataset`` read by ``Runner.build_dataloader`` (mmcv's OpenCV decode
and bilinear resize: the pixels of ``cv2.imread`` + ``cv2.resize``).
"""
import multiprocessing
import os
import os.path as osp
from typing import (Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

import cv2
import torch

import numpy as np

from .davis_metrics import read_label
from .image_loader import iter_images, ordered_loader
from .label_propagation import (davis_frame_size, list_frames, read_palette,
                                segment_video)

__all__ = ['build_frame_loader', 'iter_frames', 'read_sequences',
           'segment_sequence', 'segment_davis']

#: The worker process's model and propagation settings (set once by
#: :func:`_init_worker`).
_WORKER: Dict[str, object] = {}


def read_sequences(data_root: str, split: str = 'val') -> List[str]:
    """Sequence names of ``<data_root>/ImageSets/2017/<split>.txt``.

    Raises:
        FileNotFoundError: If the split file is missing.
        ValueError: If it lists no sequence.
    """
    path = osp.join(data_root, 'ImageSets', '2017', f'{split}.txt')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} does not exist: --data-root must be a DAVIS-2017 folder '
            'with ImageSets/2017/<split>.txt, JPEGImages/480p and '
            'Annotations/480p.')
    with open(path) as f:
        seqs = [line.strip() for line in f if line.strip()]
    if not seqs:
        raise ValueError(f'{path} lists no sequence.')
    return seqs


def build_frame_loader(frame_dir: str, size: Tuple[int, int],
                       num_workers: int = 0):
    """The sorted ``*.jpg`` frames of a sequence folder, resized to ``size``.

    Args:
        frame_dir (str): ``JPEGImages/480p/<seq>``.
        size (tuple[int, int]): ``(H, W)`` of :func:`davis_frame_size`.
        num_workers (int): Loading processes (0 inside a ``nproc`` worker:
            pool workers may not start processes).

    Returns:
        torch.utils.data.DataLoader: Batches of one frame in order,
        ``pseudo_collate``d (``img_path`` and BGR uint8 ``img`` lists).
    """
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(size[1], size[0]), keep_ratio=False),
    ]
    return ordered_loader(
        dict(
            type='mmpretrain.CustomDataset',
            data_prefix=frame_dir,
            with_label=False,
            extensions=('.jpg', ),
            pipeline=pipeline),
        num_workers=num_workers)


def iter_frames(loader) -> Iterator[Tuple[str, np.ndarray]]:
    """``(path, image)`` pairs of a :func:`build_frame_loader` loader."""
    return iter_images(loader)


def segment_sequence(seq: str, img_root: str, ann_root: str, out_root: str,
                     model, on_frame: Optional[Callable[[], None]] = None,
                     num_workers: int = 0, **kwargs) -> int:
    """Propagate the first annotation of one sequence through its frames.

    Args:
        seq (str): Sequence name.
        img_root (str): ``JPEGImages/480p``.
        ann_root (str): ``Annotations/480p`` (only the first frame's PNG is
            read).
        out_root (str): Results go to ``<out_root>/<seq>/<frame>.png``.
        model (PretrainedSelfPatch): Feature extractor.
        on_frame (Callable, optional): Called after each frame.
        num_workers (int): Frame-loading processes.
        **kwargs: Options of :func:`segment_video` (``resolution``,
            ``n_last_frames``, ...).

    Returns:
        int: The number of frames written.
    """
    frame_dir = osp.join(img_root, seq)
    frames = list_frames(frame_dir)
    first_ann = osp.join(
        ann_root, seq,
        osp.splitext(osp.basename(frames[0]))[0] + '.png')
    first_label = read_label(first_ann)
    # The resize follows the first annotation's size: loader built after it.
    size = davis_frame_size(*first_label.shape,
                            kwargs.get('resolution', 480),
                            kwargs.get('long_side_multiple', 64))
    loader = build_frame_loader(frame_dir, size, num_workers)
    seq_out = osp.join(out_root, seq)
    os.makedirs(seq_out, exist_ok=True)

    def extract(img):
        return model.featmap(model.preprocess(img))[0]

    segment_video(iter_frames(loader), first_label, extract,
                  model.patch_size, seq_out, read_palette(first_ann),
                  on_frame=on_frame, **kwargs)
    return len(frames)


def _init_worker(model_args: Tuple, seg_kwargs: dict, threads: int) -> None:
    """Pool initializer: load the model once per worker process."""
    from .pretrained import load_pretrained_selfpatch
    torch.set_num_threads(threads)
    cv2.setNumThreads(1)
    _WORKER['kwargs'] = seg_kwargs
    try:
        _WORKER['model'] = load_pretrained_selfpatch(*model_args)
    except Exception as err:  # noqa: BLE001
        # An initializer that raises makes the Pool restart workers
        # forever; keep the error and raise it from the first job instead.
        _WORKER['error'] = err


def _segment_job(job: Tuple[str, str, str, str]) -> int:
    if 'error' in _WORKER:
        raise _WORKER['error']
    return segment_sequence(*job, _WORKER['model'], **_WORKER['kwargs'])


def segment_davis(seqs: Sequence[str],
                  img_root: str,
                  ann_root: str,
                  out_root: str,
                  model_args: Tuple,
                  nproc: int = 1,
                  on_frames: Optional[Callable[[int], None]] = None,
                  num_workers: int = 0,
                  **seg_kwargs) -> None:
    """Segment every sequence, ``nproc`` sequences at a time.

    Args:
        seqs (Sequence[str]): Sequence names.
        img_root (str): ``JPEGImages/480p``.
        ann_root (str): ``Annotations/480p``.
        out_root (str): Results folder.
        model_args (tuple): Arguments of
            :func:`~selfpatch_mm.evaluation.load_pretrained_selfpatch`
            (config, checkpoint, key, device); each process loads its own
            copy.
        nproc (int): Processes. With more than one, workers are started
            with ``spawn`` (safe with CUDA and with torch's thread pools).
        on_frames (Callable, optional): Called with a number of finished
            frames (after each frame with one process, after each sequence
            with several).
        num_workers (int): Frame-loading processes with ``nproc=1`` (the
            ``nproc`` workers load in-process: pool workers are daemons).
        **seg_kwargs: Options of :func:`segment_video`.
    """
    jobs = [(seq, img_root, ann_root, out_root) for seq in seqs]
    nproc = max(1, min(nproc, len(jobs)))
    if nproc == 1:
        from .pretrained import load_pretrained_selfpatch
        model = load_pretrained_selfpatch(*model_args)
        step = None if on_frames is None else (lambda: on_frames(1))
        for job in jobs:
            segment_sequence(*job, model, on_frame=step,
                             num_workers=num_workers, **seg_kwargs)
        return
    threads = max(1, (os.cpu_count() or 1) // nproc)
    ctx = multiprocessing.get_context('spawn')
    with ctx.Pool(nproc, _init_worker,
                  (tuple(model_args), seg_kwargs, threads)) as pool:
        for done in pool.imap_unordered(_segment_job, jobs):
            if on_frames is not None:
                on_frames(done)
