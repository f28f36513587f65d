# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""DAVIS-2017 video object segmentation by label propagation (no
fine-tuning), with J&F computed here.

Besides the PNG results, ``--out-dir`` receives
``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv`` in
the layout of davis2017-evaluation's ``evaluation_method.py``.

The protocol of the SelfPatch (https://arxiv.org/abs/2206.07990) and DINO
``eval_video_segmentation.py``; see
:mod:`selfpatch_mm.evaluation.label_propagation` for the details.

Example::

    python tools/analysis_tools/davis_label_propagation.py \\
        configs/selfpatch/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py \\
        work_dirs/selfpatch/epoch_300.pth \\
        --data-root data/DAVIS --out-dir work_dirs/davis_results --nproc 8
"""
import argparse
import os.path as osp
from typing import List, Optional

from mmengine.utils import ProgressBar

from selfpatch_mm.apis import add_pretrained_args
from selfpatch_mm.evaluation import (evaluate_davis,
                                     format_davis_table, list_frames,
                                     read_sequences, segment_davis,
                                     summarize_davis, write_davis_csv)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The model arguments of :func:`add_pretrained_args`, the DAVIS folders
    and the official propagation settings (context, neighbourhood, top-k,
    resolution)."""
    parser = argparse.ArgumentParser(
        description='DAVIS-2017 label propagation with SelfPatch features')
    add_pretrained_args(parser)
    parser.add_argument(
        '--data-root',
        required=True,
        help='DAVIS root (JPEGImages/480p, Annotations/480p, '
        'ImageSets/2017/val.txt)')
    parser.add_argument(
        '--out-dir',
        required=True,
        help='results folder: <out-dir>/<seq>/<frame>.png')
    parser.add_argument(
        '--split',
        default='val',
        help='ImageSets/2017/<split>.txt (default: val)')
    parser.add_argument(
        '--n-last-frames',
        type=int,
        default=7,
        help='preceding frames used as context')
    parser.add_argument(
        '--size-mask-neighborhood',
        type=int,
        default=12,
        help='neighbourhood radius in patches (0: none)')
    parser.add_argument(
        '--topk',
        type=int,
        default=5,
        help='source patches each target patch uses')
    parser.add_argument(
        '--resolution',
        type=int,
        default=480,
        help='short side of the resized frames')
    parser.add_argument(
        '--long-side-multiple',
        type=int,
        default=64,
        help='long side rounded down to a multiple of this '
        '(official: 64)')
    parser.add_argument(
        '--nproc',
        type=int,
        default=1,
        help='sequences propagated (one model copy per process) and '
        'scored in parallel')
    parser.add_argument(
        '--num-workers',
        type=int,
        default=2,
        help='frame-loading processes of the dataloader (with --nproc 1; '
        'the --nproc workers load in-process)')
    parser.add_argument(
        '--eval-only',
        action='store_true',
        help='only score the PNGs already in --out-dir')
    args = parser.parse_args(argv)
    if args.n_last_frames < 0 or args.topk < 1 or \
            args.size_mask_neighborhood < 0 or args.resolution < 1 or \
            args.nproc < 1 or args.num_workers < 0:
        parser.error('--n-last-frames, --size-mask-neighborhood and '
                     '--num-workers must be >= 0, --topk, --resolution and '
                     '--nproc >= 1.')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Run label propagation and print the scores.

    Returns:
        dict: Output of :func:`summarize_davis`.
    """
    args = parse_args(argv)
    seqs = read_sequences(args.data_root, args.split)
    img_root = osp.join(args.data_root, 'JPEGImages', '480p')
    ann_root = osp.join(args.data_root, 'Annotations', '480p')
    if not args.eval_only:
        frames = {s: list_frames(osp.join(img_root, s)) for s in seqs}
        progress = ProgressBar(sum(map(len, frames.values())))
        segment_davis(
            seqs,
            img_root,
            ann_root,
            args.out_dir,
            (args.config, args.checkpoint, args.key, args.device),
            nproc=args.nproc,
            on_frames=lambda n: progress.update(n),
            num_workers=args.num_workers,
            resolution=args.resolution,
            n_last_frames=args.n_last_frames,
            size_mask_neighborhood=args.size_mask_neighborhood,
            topk=args.topk,
            long_side_multiple=args.long_side_multiple)
        print()
    summary = summarize_davis(
        evaluate_davis(ann_root, args.out_dir, seqs, nproc=args.nproc))
    print(format_davis_table(summary))
    for path in write_davis_csv(summary, args.out_dir, args.split):
        print(f'Saved {path}')
    return summary


if __name__ == '__main__':
    main()
