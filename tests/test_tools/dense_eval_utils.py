"""Shared helpers of the dense-evaluation tool tests: a demo checkpoint and
a synthetic DAVIS-2017 video (the tools run through tests/helpers)."""
from pathlib import Path
from typing import List

import cv2
import numpy as np
from helpers import DEMO_CONFIG
from PIL import Image

# Background green, object 1 red, object 2 blue (BGR).
COLOURS = {0: (40, 150, 40), 1: (30, 30, 220), 2: (220, 60, 30)}
PALETTE = [0, 0, 0, 200, 0, 0, 0, 200, 0] + [0] * (253 * 3)


def save_demo_checkpoint(path: Path) -> str:
    """Build the demo SelfPatch model (random weights) and save an
    mmengine-style checkpoint, much cheaper than training it."""
    import torch
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    import selfpatch_mm.models  # noqa: F401
    torch.manual_seed(0)
    # The constructor's random weights suffice (init_weights only logs a
    # long table); the teacher starts as a copy of the student.
    model = MODELS.build(Config.fromfile(DEMO_CONFIG).model)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return str(path)


def object_labels(h: int, w: int, t: int, shift: int = 0) -> np.ndarray:
    """Object ids of frame ``t``: a square moving right and a disk moving
    down (``shift`` moves both further right, to make wrong masks)."""
    label = np.zeros((h, w), np.uint8)
    s = h // 3
    x0, y0 = w // 8 + 3 * t + shift, h // 4
    label[y0:y0 + s, x0:x0 + s] = 1
    cv2.circle(label, (w * 5 // 8 + shift, h // 3 + 2 * t), h // 6, 2, -1)
    return label


def write_label(path: Path, label: np.ndarray) -> None:
    img = Image.fromarray(label, mode='P')
    img.putpalette(PALETTE)
    img.save(str(path))


def make_davis(root: Path,
               h: int = 64,
               w: int = 128,
               num_frames: int = 6,
               seqs: List[str] = ('cars', )) -> Path:
    """Write a DAVIS-2017 layout with moving coloured objects."""
    rng = np.random.default_rng(0)
    (root / 'ImageSets' / '2017').mkdir(parents=True)
    (root / 'ImageSets' / '2017' / 'val.txt').write_text(''.join(
        f'{s}\n' for s in seqs))
    for seq in seqs:
        img_dir = root / 'JPEGImages' / '480p' / seq
        ann_dir = root / 'Annotations' / '480p' / seq
        img_dir.mkdir(parents=True)
        ann_dir.mkdir(parents=True)
        for t in range(num_frames):
            label = object_labels(h, w, t)
            img = np.zeros((h, w, 3), np.uint8)
            for obj, colour in COLOURS.items():
                img[label == obj] = colour
            noise = rng.integers(-12, 13, img.shape)
            img = np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)
            cv2.imwrite(str(img_dir / f'{t:05d}.jpg'), img)
            write_label(ann_dir / f'{t:05d}.png', label)
    return root
