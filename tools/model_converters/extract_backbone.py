"""Write the ViT of a SelfPatch checkpoint to a backbone-only file.

The output, ``{'state_dict': {ViT keys}, 'meta': {...}}``, loads into
``SelfPatchDenseViT`` (``init_cfg=dict(type='Pretrained', checkpoint=OUT)``)
and into ``SelfPatchViT``/mmpretrain ViTs with ``prefix='backbone.'``-free
keys. An output ending in ``.safetensors`` (or ``--safetensors``) is written
in that format: tensors only, no pickle, so it cannot carry code. Share
weights that way.

Example::

    python tools/model_converters/extract_backbone.py \
        work_dirs/selfpatch/epoch_300.pth selfpatch_vit-s16_teacher.safetensors
"""
import argparse
import os.path as osp
from typing import Optional

from selfpatch_mm.apis import add_unsafe_pickle_arg
from selfpatch_mm.checkpoint import (extract_vit_state_dict,
                                     read_conversion_source, save_weights_file)


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract the ViT backbone of a SelfPatch checkpoint')
    parser.add_argument('src', help='pretraining checkpoint (selfpatch_mm, '
                        'or an official file; a path or an http(s) URL)')
    parser.add_argument('dst', help='output file (.safetensors or .pth)')
    parser.add_argument(
        '--key',
        choices=['teacher', 'student'],
        default='teacher',
        help='which network to take (the official transfer uses the '
        'teacher)')
    parser.add_argument(
        '--safetensors',
        action='store_true',
        help='write .safetensors (added to dst when it lacks the suffix)')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace an existing dst')
    add_unsafe_pickle_arg(parser)
    args = parser.parse_args(argv)
    if args.safetensors and not args.dst.endswith('.safetensors'):
        args.dst = osp.splitext(args.dst)[0] + '.safetensors'
    return args


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    ckpt, src = read_conversion_source(args.src, args.dst, args.overwrite)
    state, source = extract_vit_state_dict(ckpt, args.key, filename=args.src)
    meta = dict(source=src, network=args.key, keys_from=source)
    if isinstance(ckpt, dict) and isinstance(ckpt.get('meta'), dict):
        for k in ('epoch', 'iter', 'mmengine_version'):
            if k in ckpt['meta']:
                meta[k] = ckpt['meta'][k]
    save_weights_file(state, args.dst, meta)
    print(f'Wrote {len(state)} ViT tensors ({source}) to {args.dst}')


if __name__ == '__main__':
    main()
