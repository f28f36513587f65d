"""Export a SelfPatch ViT to timm's folder format.

``DST_DIR`` receives ``config.json`` (``architecture``, ``model_args``,
``pretrained_cfg``) and ``model.safetensors``, so that timm builds the
backbone offline::

    import json, timm
    cfg = json.load(open('DST_DIR/config.json'))
    model = timm.create_model(
        cfg['architecture'], pretrained=True,
        pretrained_cfg_overlay=dict(file='DST_DIR/model.safetensors'),
        **cfg['model_args'])
    tokens = model.forward_features(images)  # (B, N, C), no [CLS] token

or ``timm.create_model('local-dir:DST_DIR', pretrained=True)``. Only the
second reads ``config.json``'s ``pretrained_cfg`` (ImageNet mean and std,
bicubic, crop 224/256: the official evaluation's preprocessing); the first
keeps the architecture's default one (timm's mean/std 0.5) unless it is
passed too: ``pretrained_cfg_overlay=dict(cfg['pretrained_cfg'], file=...)``.
The source
is any checkpoint the package reads: a ``tools/train.py`` checkpoint (the
EMA teacher by default, ``--key student``), a backbone-only file, or the
authors' files (converted on the fly as ``official_to_mm.py`` does), as
``.pth`` or ``.safetensors``. timm is not needed to export.

Example::

    python tools/model_converters/mm_to_timm.py \
        work_dirs/selfpatch/epoch_300.pth selfpatch_vit-s16_timm
"""
import argparse
import json
import os
import os.path as osp
from typing import Optional

from selfpatch_mm.apis import add_unsafe_pickle_arg
from selfpatch_mm.checkpoint import (check_output_path, extract_vit_state_dict,
                                     read_conversion_source, save_weights_file)
from selfpatch_mm.checkpoint.timm_export import (TIMM_CONFIG, TIMM_WEIGHTS,
                                                 timm_vit_export)


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a SelfPatch ViT to timm (config.json + '
        'model.safetensors)')
    parser.add_argument('src', help='checkpoint (selfpatch_mm, backbone-only '
                        'or official; a path or an http(s) URL)')
    parser.add_argument('dst_dir', help='output folder')
    parser.add_argument(
        '--key', choices=['teacher', 'student'], default='teacher',
        help='which network to export (the official transfer uses the '
        'teacher)')
    parser.add_argument(
        '--num-heads', type=int, default=None,
        help='attention heads of the ViT (default: width / 64, the '
        'standard ViT-T/S/B/L head width)')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='replace config.json / model.safetensors in dst_dir')
    add_unsafe_pickle_arg(parser)
    return parser.parse_args(argv)


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    weights = osp.join(args.dst_dir, TIMM_WEIGHTS)
    config_path = osp.join(args.dst_dir, TIMM_CONFIG)
    try:
        check_output_path(args.src, config_path, args.overwrite)
    except FileExistsError as e:
        raise SystemExit(str(e)) from e
    ckpt, src = read_conversion_source(args.src, weights, args.overwrite)
    vit, keys_from = extract_vit_state_dict(ckpt, args.key,
                                            filename=args.src)
    try:
        state, config = timm_vit_export(vit, args.num_heads, src)
    except (KeyError, ValueError) as e:
        raise SystemExit(f'{args.src}: {e}') from e
    # The header holds the provenance; timm reads the tensors only.
    save_weights_file(state, weights,
                      dict(source=src, network=args.key, keys_from=keys_from))
    tmp = config_path + '.tmp'
    os.makedirs(args.dst_dir, exist_ok=True)
    with open(tmp, 'w') as f:
        json.dump(config, f, indent=2)
    os.replace(tmp, config_path)
    m = config['model_args']
    print(f'Wrote {len(state)} tensors ({keys_from}) and {TIMM_CONFIG} to '
          f'{args.dst_dir}: {config["architecture"]} with embed_dim='
          f'{m["embed_dim"]}, depth={m["depth"]}, num_heads='
          f'{m["num_heads"]}, patch_size={m["patch_size"]}, img_size='
          f'{m["img_size"]}, class_token={m["class_token"]}')


if __name__ == '__main__':
    main()
