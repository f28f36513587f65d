"""Convert the authors' (alinlab/SelfPatch) checkpoints to selfpatch_mm.

* A full training checkpoint (``student``/``teacher``/``dino_loss``) becomes
  a full selfpatch_mm checkpoint: the student as the model, the EMA teacher
  under ``teacher.*`` and the loss centres. Use it with ``load_from`` in a
  pretraining config, or as the ``Pretrained`` checkpoint of
  ``SelfPatchDenseViT`` (which takes the teacher).
* A DINO-style ViT state dict (``patch_embed.proj``, ``pos_embed``,
  ``blocks.N``; possibly inside ``teacher`` and with ``module.`` or
  ``backbone.`` prefixes) becomes a backbone-only file.

Example::

    python tools/model_converters/official_to_mm.py checkpoint.pth \
        selfpatch_vit-s16_mm.pth
"""
import argparse
import os
import os.path as osp
from typing import Optional

import torch

from selfpatch_mm.models.utils.checkpoint_convert import (
    convert_official_checkpoint, load_checkpoint_file)


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert official SelfPatch/DINO checkpoints')
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output file')
    return parser.parse_args(argv)


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    ckpt = load_checkpoint_file(args.src)
    try:
        layout, state = convert_official_checkpoint(ckpt)
    except (ValueError, KeyError) as e:
        raise SystemExit(f'{args.src}: {e}') from e
    meta = dict(source=osp.abspath(args.src), layout=layout)
    if isinstance(ckpt, dict) and 'epoch' in ckpt:
        meta['epoch'] = ckpt['epoch']
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save({'state_dict': state, 'meta': meta}, args.dst)
    kind = ('full SelfPatch model (student, teacher.*, centres)'
            if layout == 'official_full' else 'backbone only')
    print(f'Wrote {len(state)} tensors, {kind}, to {args.dst}')


if __name__ == '__main__':
    main()
