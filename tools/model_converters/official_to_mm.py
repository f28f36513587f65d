"""Convert the authors' (alinlab/SelfPatch) checkpoints to selfpatch_mm.

* A full training checkpoint (``student``/``teacher``/``dino_loss``) becomes
  a full selfpatch_mm checkpoint: the student as the model, the EMA teacher
  under ``teacher.*`` and the loss centres. Use it with ``load_from`` in a
  pretraining config, or as the ``Pretrained`` checkpoint of
  ``SelfPatchDenseViT`` (which takes the teacher).
* A DINO-style ViT state dict (``patch_embed.proj``, ``pos_embed``,
  ``blocks.N``; possibly inside ``teacher`` and with ``module.`` or
  ``backbone.`` prefixes) becomes a backbone-only file.

The authors' files are read as data (their ``args`` Namespace is allowed);
an output ending in ``.safetensors`` is written in that format.

Example::

    python tools/model_converters/official_to_mm.py checkpoint.pth \
        selfpatch_vit-s16_mm.pth
"""
import argparse
from typing import Optional

from selfpatch_mm.apis import add_unsafe_pickle_arg
from selfpatch_mm.checkpoint import (convert_official_checkpoint,
                                     read_conversion_source, save_weights_file)


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert official SelfPatch/DINO checkpoints')
    parser.add_argument('src', help='official checkpoint (path or URL)')
    parser.add_argument('dst', help='output file (.pth or .safetensors)')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace an existing dst')
    add_unsafe_pickle_arg(parser)
    return parser.parse_args(argv)


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    ckpt, src = read_conversion_source(args.src, args.dst, args.overwrite)
    try:
        layout, state = convert_official_checkpoint(ckpt)
    except (ValueError, KeyError) as e:
        raise SystemExit(f'{args.src}: {e}') from e
    meta = dict(source=src, layout=layout)
    if isinstance(ckpt, dict) and 'epoch' in ckpt:
        meta['epoch'] = ckpt['epoch']
    save_weights_file(state, args.dst, meta)
    kind = ('full SelfPatch model (student, teacher.*, centres)'
            if layout == 'official_full' else 'backbone only')
    print(f'Wrote {len(state)} tensors, {kind}, to {args.dst}')


if __name__ == '__main__':
    main()
