# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Weighted k-NN classification (DINO's ``eval_knn.py`` protocol) on frozen
SelfPatch (https://arxiv.org/abs/2201.06857) features of labelled image
folders.

``--feature cls`` uses the aggregation module's image token (the [CLS]
token of SelfPatch, after its final LayerNorm); ``--feature mean-patch``
averages the patch tokens after that same final LayerNorm (the backbone's
raw last-block tokens when the checkpoint has no neck).

Example::

    python tools/analysis_tools/knn_eval.py CONFIG CHECKPOINT \\
        --train-dir data/imagenet/train --val-dir data/imagenet/val
"""
import argparse
from typing import List, Optional

import cv2
import torch
from mmengine.utils import ProgressBar

from selfpatch_mm.evaluation import (add_pretrained_args,
                                     extract_image_features, knn_classify,
                                     load_pretrained_selfpatch,
                                     read_image_folder)
from selfpatch_mm.evaluation.knn import center_crop_resize


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Weighted k-NN classification on frozen features')
    add_pretrained_args(parser)
    parser.add_argument(
        '--train-dir',
        required=True,
        help='ImageNet-style folder: <class>/<image>')
    parser.add_argument(
        '--val-dir',
        required=True,
        help='folder with the same class subfolders')
    parser.add_argument(
        '--feature',
        choices=['cls', 'mean-patch'],
        default='cls',
        help='image feature')
    parser.add_argument('--k', type=int, default=20, help='neighbours')
    parser.add_argument(
        '--temperature',
        type=float,
        default=0.07,
        help='vote weights exp(sim / T)')
    parser.add_argument(
        '--size',
        type=int,
        default=224,
        help='centre crop size (short side resized to '
        'size * 256 / 224)')
    parser.add_argument('--batch-size', type=int, default=64)
    args = parser.parse_args(argv)
    if args.k < 1 or args.temperature <= 0 or args.batch_size < 1:
        parser.error('--k and --batch-size must be >= 1 and --temperature '
                     '> 0.')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Extract features, classify the validation images and print the
    accuracy.

    Returns:
        dict: ``top1`` (and ``top5`` with at least 5 classes), in percent.
    """
    args = parse_args(argv)
    model = load_pretrained_selfpatch(args.config, args.checkpoint, args.key,
                                      args.device)
    if args.feature == 'cls' and model.neck is None:
        raise KeyError(f'{args.checkpoint} has no aggregation neck weights, '
                       'so there is no [CLS] feature: use --feature '
                       'mean-patch.')
    train_paths, train_labels, classes = read_image_folder(args.train_dir)
    val_paths, val_labels, _ = read_image_folder(args.val_dir, classes)

    def load(path: str) -> torch.Tensor:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f'Cannot read image {path}.')
        return model.preprocess(
            center_crop_resize(img, args.size, model.patch_size))

    def forward(x: torch.Tensor) -> torch.Tensor:
        featmaps = model.backbone(x)
        if model.neck is None:
            return featmaps[-1].flatten(2).mean(-1)
        cls, patches = model.neck(featmaps)
        return cls if args.feature == 'cls' else patches.mean(1)

    progress = ProgressBar(len(train_paths) + len(val_paths))
    step = progress.update  # takes the number of finished images
    train_feats = extract_image_features(train_paths, load, forward,
                                         args.batch_size, step)
    val_feats = extract_image_features(val_paths, load, forward,
                                       args.batch_size, step)
    print()
    top1, top5 = knn_classify(train_feats, torch.tensor(train_labels),
                              val_feats, torch.tensor(val_labels), args.k,
                              args.temperature, len(classes))
    result = dict(top1=top1)
    msg = (f'{args.k}-NN ({args.feature}, T={args.temperature}) on '
           f'{len(val_paths)} images of {len(classes)} classes: '
           f'Top-1 {top1:.2f}')
    if len(classes) >= 5:
        result['top5'] = top5
        msg += f', Top-5 {top5:.2f}'
    print(msg)
    return result


if __name__ == '__main__':
    main()
