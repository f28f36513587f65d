# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Write converted weights: ``.safetensors`` (the format to share) or
``.pth``, never over the input or an existing file by accident."""
import json
import os
import os.path as osp
from typing import Any, Dict, Optional, Tuple

import torch

__all__ = ['check_output_path', 'read_conversion_source', 'save_weights_file']


def check_output_path(src: str, dst: str, overwrite: bool = False) -> None:
    """Refuse to write ``dst`` over ``src`` or, without ``overwrite``, over
    any existing file.

    Raises:
        FileExistsError: With the paths and the way out (``--overwrite``).
    """
    if '://' not in src and osp.exists(dst) and osp.exists(src) and \
            osp.samefile(src, dst):
        raise FileExistsError(
            f'The output {dst} is the input file: writing it would replace '
            'the checkpoint with the converted weights. Choose another '
            'output path.')
    if osp.exists(dst) and not overwrite:
        raise FileExistsError(
            f'{dst} already exists; pass --overwrite to replace it.')


def save_weights_file(state_dict: Dict[str, torch.Tensor], dst: str,
                      meta: Optional[Dict[str, Any]] = None) -> None:
    """Save ``{'state_dict': ..., 'meta': ...}``, as ``.safetensors`` when
    ``dst`` ends so.

    A ``.safetensors`` file holds only tensors and a str -> str header, so it
    cannot carry code: it is the format to share weights in. Non-string meta
    values are stored as JSON. :func:`load_checkpoint_file` reads both.

    Args:
        state_dict (dict): Tensors.
        dst (str): Output path (its folder is created).
        meta (dict, optional): Provenance (source file, epoch...).
    """
    os.makedirs(osp.dirname(osp.abspath(dst)) or '.', exist_ok=True)
    meta = dict(meta or {})
    if not dst.endswith('.safetensors'):
        torch.save({'state_dict': state_dict, 'meta': meta}, dst)
        return
    from safetensors.torch import save_file

    # safetensors refuses views and shared storage: store plain copies.
    tensors = {k: v.detach().cpu().contiguous().clone()
               for k, v in state_dict.items()}
    header = {k: v if isinstance(v, str) else json.dumps(v, default=str)
              for k, v in meta.items()}
    save_file(tensors, dst, metadata=header)


def read_conversion_source(src: str, dst: str,
                           overwrite: bool = False) -> Tuple[Any, str]:
    """The first step of a converter's ``main``: check ``dst``, read
    ``src`` as data.

    Args:
        src (str): Input checkpoint, a path or an http(s) URL.
        dst (str): Output file.
        overwrite (bool): Replace an existing ``dst``.

    Returns:
        tuple: The loaded checkpoint and ``src`` as the output's metadata
        names it (a URL as given, a path made absolute).

    Raises:
        SystemExit: With the message alone (it names the files, so a
            traceback adds nothing) when ``dst`` exists or ``src`` cannot
            be read.
    """
    from .safe_load import CheckpointLoadError, load_checkpoint_file
    try:
        check_output_path(src, dst, overwrite)
        ckpt = load_checkpoint_file(src)
    except (FileExistsError, FileNotFoundError, CheckpointLoadError) as e:
        raise SystemExit(str(e)) from e
    return ckpt, src if '://' in src else osp.abspath(src)
