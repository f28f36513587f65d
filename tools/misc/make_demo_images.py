# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Write small synthetic scenes (shapes on gradients) as JPEG files.

The repo ships the output in ``demo/images``; tests call this to make their
own image folders.

Example:
    python tools/misc/make_demo_images.py demo/images --num 24 --size 96
"""
import argparse
import os.path as osp
from pathlib import Path

import cv2
import numpy as np


def make_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One BGR uint8 image: a colour gradient with a few random shapes."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = (x / max(w - 1, 1) + y / max(h - 1, 1)) / 2
    img = (c0 * (1 - t[..., None]) + c1 * t[..., None]).astype(np.uint8)
    for _ in range(rng.integers(2, 6)):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(min(h, w) // 10, min(h, w) // 3))
        if rng.random() < 0.5:
            cv2.circle(img, (cx, cy), r, color, -1)
        else:
            cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), color, -1)
    return img


def make_images(out_dir: str, num: int = 24, size: int = 96,
                seed: int = 0) -> list:
    """Write ``num`` images of ``size`` x ``size`` into ``out_dir``."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(num):
        path = osp.join(out_dir, f'scene_{i:03d}.jpg')
        cv2.imwrite(path, make_image(rng, size, size))
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('out_dir')
    parser.add_argument('--num', type=int, default=24)
    parser.add_argument('--size', type=int, default=96)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    paths = make_images(args.out_dir, args.num, args.size, args.seed)
    print(f'wrote {len(paths)} images to {args.out_dir}')


if __name__ == '__main__':
    main()
