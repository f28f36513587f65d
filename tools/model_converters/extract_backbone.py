"""Write the ViT of a SelfPatch checkpoint to a backbone-only file.

The output, ``{'state_dict': {ViT keys}, 'meta': {...}}``, loads into
``SelfPatchDenseViT`` (``init_cfg=dict(type='Pretrained', checkpoint=OUT)``)
and into ``SelfPatchViT``/mmpretrain ViTs with ``prefix='backbone.'``-free
keys.

Example::

    python tools/model_converters/extract_backbone.py \
        work_dirs/selfpatch/epoch_300.pth selfpatch_vit-s16_teacher.pth
"""
import argparse
import os
import os.path as osp
from typing import Optional

import torch

from selfpatch_mm.models.utils.checkpoint_convert import (
    extract_vit_state_dict, load_checkpoint_file)


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract the ViT backbone of a SelfPatch checkpoint')
    parser.add_argument('src', help='pretraining checkpoint (selfpatch_mm, '
                        'or an official file)')
    parser.add_argument('dst', help='output file')
    parser.add_argument(
        '--key',
        choices=['teacher', 'student'],
        default='teacher',
        help='which network to take (the official transfer uses the '
        'teacher)')
    return parser.parse_args(argv)


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    ckpt = load_checkpoint_file(args.src)
    state, source = extract_vit_state_dict(ckpt, args.key, filename=args.src)
    meta = dict(source=osp.abspath(args.src), network=args.key,
                keys_from=source)
    if isinstance(ckpt, dict) and isinstance(ckpt.get('meta'), dict):
        for k in ('epoch', 'iter', 'mmengine_version'):
            if k in ckpt['meta']:
                meta[k] = ckpt['meta'][k]
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save({'state_dict': state, 'meta': meta}, args.dst)
    print(f'Wrote {len(state)} ViT tensors ({source}) to {args.dst}')


if __name__ == '__main__':
    main()
