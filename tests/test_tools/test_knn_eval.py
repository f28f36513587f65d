"""Weighted k-NN classification of frozen features."""
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

# --import-mode=importlib puts no test folder on sys.path.
sys.path.insert(0, str(Path(__file__).parent))
from dense_eval_utils import (
    DEMO_CONFIG,
    run_tool,  # noqa: E402
    save_demo_checkpoint)

from selfpatch_mm.evaluation import (
    knn_classify,  # noqa: E402
    read_image_folder)


def _make_split(root: Path, per_class: int, seed: int) -> Path:
    """Five clearly separable classes of 40x40 images: three solid colours,
    stripes and a checkerboard, all with noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:40, 0:40]
    patterns = {
        'red': np.full((40, 40, 3), (30, 30, 220)),
        'green': np.full((40, 40, 3), (30, 200, 30)),
        'blue': np.full((40, 40, 3), (220, 40, 30)),
        'stripes': np.repeat((((x // 4) % 2) * 255)[..., None], 3, 2),
        'checker': np.repeat(((((x // 8) + (y // 8)) % 2) * 255)[..., None], 3,
                             2),
    }
    for name, base in patterns.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = base + rng.integers(-25, 26, base.shape)
            cv2.imwrite(
                str(root / name / f'{i}.png'),
                np.clip(img, 0, 255).astype(np.uint8))
    return root


def test_knn_weights_votes_by_similarity():
    train = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8]]), dim=1)
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    # Sharp weights: the one identical neighbour outvotes two far ones.
    top1, _ = knn_classify(
        train, labels, query, torch.tensor([0]), k=3, temperature=0.07)
    assert top1 == 100.0
    # Flat weights: the majority wins.
    top1, top5 = knn_classify(
        train, labels, query, torch.tensor([0]), k=3, temperature=100.0)
    assert top1 == 0.0 and top5 == 100.0


def test_read_image_folder_rejects_unknown_val_class(tmp_path):
    _make_split(tmp_path / 'train', 1, 0)
    paths, labels, classes = read_image_folder(str(tmp_path / 'train'))
    assert classes == sorted(classes) and len(paths) == 5
    (tmp_path / 'train' / 'extra').mkdir()
    with pytest.raises(ValueError, match='extra'):
        read_image_folder(str(tmp_path / 'train'), classes[:5])


def test_tool_separates_classes(tmp_path):
    train = _make_split(tmp_path / 'train', 6, 0)
    val = _make_split(tmp_path / 'val', 4, 1)
    ckpt = save_demo_checkpoint(tmp_path / 'demo.pth')
    proc = run_tool('knn_eval.py',
                    DEMO_CONFIG, ckpt, '--train-dir', str(train), '--val-dir',
                    str(val), '--feature', 'mean-patch', '--size', '32',
                    '--device', 'cpu')
    top1, top5 = map(
        float,
        re.search(r'Top-1 ([\d.]+), Top-5 ([\d.]+)', proc.stdout).groups())
    assert top1 >= 80.0  # chance: 20 %
    assert top5 == 100.0
