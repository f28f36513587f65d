# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Draw SelfPatch positives, attention maps and a PCA of patch features.

Writes ``positives.png``, ``aggregation_attention.png``,
``last_block_attention.png`` and ``pca.png`` into ``--out-dir`` (for a
folder of images: into ``--out-dir/<image name>/``); see
:mod:`selfpatch_mm.evaluation.patch_visualization` for what they show.
SelfPatch: https://arxiv.org/abs/2206.07990.

Example::

    python tools/analysis_tools/visualize_patches.py \\
        configs/selfpatch/selfpatch_vit-tiny-p8_1xb8-2e_demo.py \\
        work_dirs/demo/epoch_2.pth demo/images/scene_000.jpg \\
        --out-dir work_dirs/patch_pictures --size 96
"""
import argparse
import os.path as osp
from typing import List, Optional

from selfpatch_mm.apis import add_pretrained_args
from selfpatch_mm.evaluation import (build_image_loader,
                                     iter_images, list_images,
                                     load_pretrained_selfpatch,
                                     visualize_patches)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Pictures of SelfPatch positives, attention and PCA')
    add_pretrained_args(parser)
    parser.add_argument(
        'image', help='input image (any size), or a folder of images')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument(
        '--size',
        type=int,
        default=224,
        help='short side of the resized image (sides are '
        'rounded to multiples of the patch size)')
    parser.add_argument(
        '--queries',
        type=int,
        default=4,
        help='number of query patches to draw positives for')
    parser.add_argument(
        '--scale',
        type=int,
        default=None,
        help='integer display enlargement (default: short '
        'side >= 224 pixels)')
    parser.add_argument(
        '--num-workers', type=int, default=0, help='image-loading processes')
    args = parser.parse_args(argv)
    if args.size < 1 or args.queries < 1 or (args.scale is not None
                                             and args.scale < 1):
        parser.error('--size, --queries and --scale must be >= 1.')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Write the pictures; returns :func:`visualize_patches`'s output (of
    the last image)."""
    args = parse_args(argv)
    list_file = osp.join(args.out_dir, 'images.txt')
    several = len(list_images(args.image, list_file)) > 1
    model = load_pretrained_selfpatch(args.config, args.checkpoint, args.key,
                                      args.device)
    for path, img in iter_images(build_image_loader(list_file,
                                                    args.num_workers)):
        out_dir = osp.join(args.out_dir, osp.splitext(osp.basename(path))[0]) \
            if several else args.out_dir
        result = visualize_patches(model, img, out_dir, args.size,
                                   args.queries, args.scale)
        print(f'{path}: patch grid {result["hw"][0]}x{result["hw"][1]}, '
              f'display scale {result["scale"]}')
        for q, pos in result['positives'].items():
            print(f'query patch {q}: positives {pos}')
        for out in result['files']:
            print(f'wrote {out}')
    return result


if __name__ == '__main__':
    main()
