# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Label propagation over the sequences of a DAVIS-2017 folder, in one
process or in several (``nproc``), for the SelfPatch
(https://arxiv.org/abs/2201.06857) evaluation without fine-tuning.

Each worker process loads the model once and segments whole sequences;
sequences are independent, so the written PNGs do not depend on ``nproc``
beyond floating-point reduction order (each worker uses
``cpu_count // nproc`` threads).
"""
import multiprocessing
import os
import os.path as osp
from typing import Callable, Dict, Optional, Sequence, Tuple

import cv2
import torch

from .davis_metrics import read_label
from .label_propagation import list_frames, read_palette, segment_video

__all__ = ['segment_sequence', 'segment_davis']

#: The worker process's model and propagation settings (set once by
#: :func:`_init_worker`).
_WORKER: Dict[str, object] = {}


def segment_sequence(seq: str, img_root: str, ann_root: str, out_root: str,
                     model, on_frame: Optional[Callable[[], None]] = None,
                     **kwargs) -> int:
    """Propagate the first annotation of one sequence through its frames.

    Args:
        seq (str): Sequence name.
        img_root (str): ``JPEGImages/480p``.
        ann_root (str): ``Annotations/480p`` (only the first frame's PNG is
            read).
        out_root (str): Results go to ``<out_root>/<seq>/<frame>.png``.
        model (PretrainedSelfPatch): Feature extractor.
        on_frame (Callable, optional): Called after each frame.
        **kwargs: Options of :func:`segment_video` (``resolution``,
            ``n_last_frames``, ...).

    Returns:
        int: The number of frames written.
    """
    frames = list_frames(osp.join(img_root, seq))
    first_ann = osp.join(
        ann_root, seq,
        osp.splitext(osp.basename(frames[0]))[0] + '.png')
    seq_out = osp.join(out_root, seq)
    os.makedirs(seq_out, exist_ok=True)

    def extract(img):
        return model.featmap(model.preprocess(img))[0]

    segment_video(frames, read_label(first_ann), extract, model.patch_size,
                  seq_out, read_palette(first_ann), on_frame=on_frame,
                  **kwargs)
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
        **seg_kwargs: Options of :func:`segment_video`.
    """
    jobs = [(seq, img_root, ann_root, out_root) for seq in seqs]
    nproc = max(1, min(nproc, len(jobs)))
    if nproc == 1:
        from .pretrained import load_pretrained_selfpatch
        model = load_pretrained_selfpatch(*model_args)
        step = None if on_frames is None else (lambda: on_frames(1))
        for job in jobs:
            segment_sequence(*job, model, on_frame=step, **seg_kwargs)
        return
    threads = max(1, (os.cpu_count() or 1) // nproc)
    ctx = multiprocessing.get_context('spawn')
    with ctx.Pool(nproc, _init_worker,
                  (tuple(model_args), seg_kwargs, threads)) as pool:
        for done in pool.imap_unordered(_segment_job, jobs):
            if on_frames is not None:
                on_frames(done)
