"""Convert a selfpatch_mm SelfPatch checkpoint to the authors' layout.

The output is the ``checkpoint.pth`` of alinlab/SelfPatch
``main_selfpatch.py``: ``student`` (``module.backbone.*``,
``module.ca_head.*``, ``module.c_head.*``, ``module.p_head.*``), ``teacher``
(the same without ``module.``), ``dino_loss`` (``center``,
``patch_center``) and ``epoch``, so that the authors' evaluation scripts
(``--pretrained_weights checkpoint.pth --checkpoint_key teacher``) load our
runs. It holds tensors and numbers only (no ``args`` Namespace, no
optimizer state): ``torch.load(weights_only=True)`` reads it, and the
authors' ``restart_from_checkpoint`` skips the absent entries. The source
is a full SelfPatch checkpoint (``tools/train.py`` or ``official_to_mm.py``
output, ``.pth`` or ``.safetensors``); ``official_to_mm.py`` followed by
this tool gives back the authors' tensors bit for bit.

Example::

    python tools/model_converters/mm_to_official.py \
        work_dirs/selfpatch/epoch_300.pth checkpoint.pth
"""
import argparse
import os
from typing import Optional

import torch

from selfpatch_mm.apis import add_unsafe_pickle_arg
from selfpatch_mm.checkpoint import (detect_layout, get_state_dict,
                                     read_conversion_source)
from selfpatch_mm.checkpoint.official_export import to_official_full


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a selfpatch_mm SelfPatch checkpoint to the '
        "authors' checkpoint.pth layout")
    parser.add_argument('src', help='selfpatch_mm checkpoint (path or URL)')
    parser.add_argument('dst', help='output .pth')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace an existing dst')
    add_unsafe_pickle_arg(parser)
    return parser.parse_args(argv)


def _epoch(ckpt: dict) -> Optional[int]:
    meta = ckpt.get('meta')
    if isinstance(meta, dict) and 'epoch' in meta:
        return int(meta['epoch'])
    return None


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    ckpt, _ = read_conversion_source(args.src, args.dst, args.overwrite)
    try:
        if detect_layout(ckpt) != 'selfpatch_mm':
            raise ValueError('this is already an official file; nothing to '
                             'convert.')
        out = to_official_full(get_state_dict(ckpt))
    except (KeyError, ValueError) as e:
        raise SystemExit(f'{args.src}: {e}') from e
    epoch = _epoch(ckpt)
    if epoch is not None:
        out['epoch'] = epoch
    # write-then-rename: an interrupted run never leaves a truncated file
    tmp = args.dst + '.tmp'
    torch.save(out, tmp)
    os.replace(tmp, args.dst)
    print(f'Wrote the official layout (student, teacher, dino_loss'
          f'{", epoch" if epoch is not None else ""}) to {args.dst}')


if __name__ == '__main__':
    main()
