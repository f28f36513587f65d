# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Weighted k-NN classification (DINO's ``eval_knn.py`` protocol) on frozen
SelfPatch (https://arxiv.org/abs/2206.07990) features.

Data: any labelled mmpretrain dataset, by default ``CustomDataset`` (an
ImageNet-style ``<class>/<image>`` folder, or ``--train-ann``/``--val-ann``
files of ``<path> <label>`` lines), read by a dataloader with workers.
Preprocessing as the official evaluation: PIL bicubic (antialiased) resize
of the short side to 256, centre crop 224, ImageNet normalisation.

``--feature cls`` uses the aggregation module's image token (the [CLS]
token of SelfPatch, after its final LayerNorm); ``--feature mean-patch``
averages the patch tokens after that same final LayerNorm (the backbone's
raw last-block tokens when the checkpoint has no neck).

All ``--k`` values come from one similarity computation. Prints one
accuracy line per k, then the results as JSON (also written to ``--out``).

Example::

    python tools/analysis_tools/knn_eval.py CONFIG CHECKPOINT \\
        --train-dir data/imagenet/train --val-dir data/imagenet/val \\
        --k 10 20 100 200 --num-workers 8 --save-features work_dirs/feats.pth
    # again, without the model (CONFIG and CHECKPOINT are not read):
    python tools/analysis_tools/knn_eval.py CONFIG CHECKPOINT \\
        --load-features work_dirs/feats.pth --k 20
"""
import argparse
import json
import os
import os.path as osp
from typing import List, Optional, Tuple

import torch
from mmengine.utils import ProgressBar

from selfpatch_mm.apis import add_pretrained_args
from selfpatch_mm.evaluation import (build_knn_dataloader,
                                     extract_features, knn_classify_multi,
                                     knn_pipeline, load_pretrained_selfpatch)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Weighted k-NN classification on frozen features')
    add_pretrained_args(parser)
    parser.add_argument(
        '--train-dir', help='training images: <class>/<image>, or the '
        'prefix of the --train-ann paths')
    parser.add_argument('--val-dir', help='validation images, likewise')
    parser.add_argument(
        '--train-ann', default='', help='annotation file: <path> <label>')
    parser.add_argument('--val-ann', default='', help='likewise')
    parser.add_argument(
        '--dataset-type',
        default='CustomDataset',
        help='mmpretrain dataset class (default: CustomDataset)')
    parser.add_argument(
        '--feature',
        choices=['cls', 'mean-patch'],
        default='cls',
        help='image feature')
    parser.add_argument(
        '--k',
        type=int,
        nargs='+',
        default=[10, 20, 100, 200],
        help='neighbour counts (default: DINO\'s 10 20 100 200)')
    parser.add_argument(
        '--temperature',
        type=float,
        default=0.07,
        help='vote weights exp(sim / T)')
    parser.add_argument(
        '--resize', type=int, default=256, help='short side after resizing')
    parser.add_argument(
        '--crop-size', type=int, default=224, help='centre crop size')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--num-workers', type=int, default=4)
    parser.add_argument(
        '--save-features', help='write the features and labels here (.pth)')
    parser.add_argument(
        '--load-features',
        help='use features written by --save-features (no model, no images)')
    parser.add_argument('--out', help='write the results JSON here')
    args = parser.parse_args(argv)
    if min(args.k) < 1 or args.temperature <= 0 or args.batch_size < 1 or \
            args.num_workers < 0:
        parser.error('--k and --batch-size must be >= 1, --num-workers >= 0 '
                     'and --temperature > 0.')
    if args.load_features is None and not (args.train_dir and args.val_dir):
        parser.error('--train-dir and --val-dir are required (or '
                     '--load-features).')
    return args


def compute_features(args: argparse.Namespace) -> dict:
    """Load the model and extract the features of both splits.

    Returns:
        dict: ``train_feats``, ``train_labels``, ``val_feats``,
        ``val_labels`` and ``num_classes``.
    """
    from mmpretrain.models import ClsDataPreprocessor
    model = load_pretrained_selfpatch(args.config, args.checkpoint, args.key,
                                      args.device)
    if args.feature == 'cls' and model.neck is None:
        raise KeyError(f'{args.checkpoint} has no aggregation neck weights, '
                       'so there is no [CLS] feature: use --feature '
                       'mean-patch.')
    pipeline = knn_pipeline(args.resize, args.crop_size)
    loaders = [
        build_knn_dataloader(root, ann, pipeline, args.batch_size,
                             args.num_workers, args.dataset_type)
        for root, ann in ((args.train_dir, args.train_ann),
                          (args.val_dir, args.val_ann))
    ]
    classes = [ld.dataset.metainfo.get('classes') for ld in loaders]
    if not (args.train_ann or args.val_ann) and classes[0] != classes[1]:
        # Folder mode numbers the classes of each folder on its own.
        raise ValueError(
            f'{args.val_dir} has the classes {list(classes[1])}, '
            f'{args.train_dir} has {list(classes[0])}: the folders must '
            'hold the same class subfolders.')
    preprocessor = ClsDataPreprocessor(
        mean=model.mean.tolist(), std=model.std.tolist(),
        to_rgb=model.to_rgb).to(model.device)

    def forward(x: torch.Tensor) -> torch.Tensor:
        featmaps = model.backbone(x)
        if model.neck is None:
            return featmaps[-1].flatten(2).mean(-1)
        cls, patches = model.neck(featmaps)
        return cls if args.feature == 'cls' else patches.mean(1)

    progress = ProgressBar(sum(len(ld.dataset) for ld in loaders))
    train_feats, train_labels = extract_features(loaders[0], preprocessor,
                                                 forward, progress.update)
    val_feats, val_labels = extract_features(loaders[1], preprocessor,
                                             forward, progress.update)
    print()
    num_classes = len(classes[0]) if classes[0] else int(
        max(train_labels.max(), val_labels.max())) + 1
    return dict(
        train_feats=train_feats,
        train_labels=train_labels,
        val_feats=val_feats,
        val_labels=val_labels,
        num_classes=num_classes)


def load_features(path: str) -> dict:
    """Read a ``--save-features`` file (tensors and ints only)."""
    feats = torch.load(path, map_location='cpu', weights_only=True)
    missing = {'train_feats', 'train_labels', 'val_feats', 'val_labels',
               'num_classes'} - set(feats)
    if missing:
        raise KeyError(f'{path} is not a --save-features file: it lacks '
                       f'{sorted(missing)}.')
    return feats


def report(args: argparse.Namespace, feats: dict,
           results: dict) -> Tuple[List[str], dict]:
    """The accuracy lines and the JSON record of the results."""
    lines, record = [], {}
    for k, (top1, top5) in results.items():
        line = (f'{k}-NN ({args.feature}, T={args.temperature}): '
                f'Top-1 {top1:.2f}')
        record[str(k)] = dict(top1=top1)
        if feats['num_classes'] >= 5:
            line += f', Top-5 {top5:.2f}'
            record[str(k)]['top5'] = top5
        lines.append(line)
    info = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        key=args.key,
        feature=args.feature,
        temperature=args.temperature,
        features=args.load_features,
        num_train=int(feats['train_feats'].shape[0]),
        num_val=int(feats['val_feats'].shape[0]),
        num_classes=int(feats['num_classes']),
        knn=record)
    return lines, info


def main(argv: Optional[List[str]] = None) -> dict:
    """Extract (or load) features, classify the validation images and print
    the accuracy for every k.

    Returns:
        dict: The JSON record; ``knn`` maps each k to ``top1`` (and
        ``top5`` with at least 5 classes), in percent.
    """
    args = parse_args(argv)
    if args.load_features:
        feats = load_features(args.load_features)
    else:
        feats = compute_features(args)
    if args.save_features:
        os.makedirs(osp.dirname(osp.abspath(args.save_features)),
                    exist_ok=True)
        torch.save(feats, args.save_features)
        print(f'Saved the features to {args.save_features}')
    results = knn_classify_multi(feats['train_feats'], feats['train_labels'],
                                 feats['val_feats'], feats['val_labels'],
                                 args.k, args.temperature,
                                 int(feats['num_classes']))
    lines, info = report(args, feats, results)
    print(f'k-NN on {info["num_val"]} images of {info["num_classes"]} '
          f'classes ({info["num_train"]} training images):')
    print('\n'.join(lines))
    text = json.dumps(info)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(text + '\n')
    print(text)
    return info


if __name__ == '__main__':
    main()
