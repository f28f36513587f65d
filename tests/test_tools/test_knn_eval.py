"""Weighted k-NN classification of frozen features: the vote, the
official preprocessing and the tool (datasets, several k, saved
features)."""
import json
import math
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

# --import-mode=importlib puts no test folder on sys.path.
sys.path.insert(0, str(Path(__file__).parent))
from dense_eval_utils import save_demo_checkpoint  # noqa: E402
from helpers import DEMO_CONFIG, load_tool, run_tool  # noqa: E402

from selfpatch_mm.evaluation import (  # noqa: E402
    build_knn_dataloader, knn_classify, knn_classify_multi, knn_pipeline)

TOOL = 'tools/analysis_tools/knn_eval.py'


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


def _planted_features():
    """One query of class 0: its twin (class 0, sim 1) and three class-1
    neighbours at sim 0.96. With T = 0.07 the twin wins alone (k = 1), but
    three votes exp(0.96 / T) outweigh one exp(1 / T) (k = 4):
    3 exp(-0.04 / 0.07) = 1.69 > 1."""
    other = torch.tensor([0.96, math.sqrt(1 - 0.96**2), 0.0])
    return dict(
        train_feats=torch.stack([torch.tensor([1.0, 0, 0])] + [other] * 3),
        train_labels=torch.tensor([0, 1, 1, 1]),
        val_feats=torch.tensor([[1.0, 0, 0]]),
        val_labels=torch.tensor([0]),
        num_classes=2)


def test_vote_by_hand():
    feats = _planted_features()
    args = [feats[k] for k in ('train_feats', 'train_labels', 'val_feats',
                               'val_labels')]
    res = knn_classify_multi(*args, ks=[1, 4, 200], temperature=0.07)
    assert res[1][0] == 100.0 and res[4][0] == 0.0
    assert res[200] == res[4]  # k is clipped to the 4 training features
    # Flat weights: the majority wins from k = 3 on; single-k wrapper.
    assert knn_classify(*args, k=3, temperature=100.0) == (0.0, 100.0)


def test_pipeline_is_the_official_one():
    pipeline = knn_pipeline()
    assert pipeline[1] == dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bicubic')
    assert pipeline[2] == dict(type='CenterCrop', crop_size=224)
    # PIL's bicubic resize antialiases: a 1-pixel checkerboard shrunk 4x
    # turns grey (a non-antialiased resize would alias it).
    from mmpretrain.datasets.transforms import ResizeEdge
    board = (np.indices((512, 512)).sum(0) % 2 * 255).astype(np.uint8)
    out = ResizeEdge(**{k: v
                        for k, v in pipeline[1].items() if k != 'type'})(
                            dict(img=np.repeat(board[..., None], 3, 2)))
    assert out['img'].shape == (256, 256, 3)
    assert np.abs(out['img'][8:-8, 8:-8].astype(float) - 127.5).max() < 8


def test_planted_features_through_the_tool(tmp_path, capsys):
    path = tmp_path / 'feats.pth'
    torch.save(_planted_features(), str(path))
    tool = load_tool(TOOL)
    info = tool.main([
        DEMO_CONFIG, 'unused.pth', '--load-features',
        str(path), '--k', '1', '4', '--out',
        str(tmp_path / 'knn.json')
    ])
    lines = capsys.readouterr().out.splitlines()
    assert '1-NN (cls, T=0.07): Top-1 100.00' in lines
    assert '4-NN (cls, T=0.07): Top-1 0.00' in lines
    assert json.loads(lines[-1]) == info
    saved = json.loads((tmp_path / 'knn.json').read_text())
    assert saved['knn'] == {'1': {'top1': 100.0}, '4': {'top1': 0.0}}


def test_dataloader_reads_folders_and_annotation_files(tmp_path):
    root = _make_split(tmp_path / 'train', 2, 0)
    (tmp_path / 'val.txt').write_text('red/0.png 0\nchecker/1.png 4\n')
    loader = build_knn_dataloader(
        str(root), pipeline=knn_pipeline(36, 32), batch_size=4, num_workers=1)
    assert len(loader.dataset) == 10 and loader.num_workers == 1
    batch = next(iter(loader))
    assert batch['inputs'][0].shape == (3, 32, 32)
    ann = build_knn_dataloader(
        str(root), str(tmp_path / 'val.txt'), knn_pipeline(36, 32), 2, 0)
    labels = [int(s.gt_label) for s in next(iter(ann))['data_samples']]
    assert labels == [0, 4]


@pytest.mark.slow
def test_tool_separates_classes(tmp_path):
    train = _make_split(tmp_path / 'train', 6, 0)
    val = _make_split(tmp_path / 'val', 4, 1)
    ckpt = save_demo_checkpoint(tmp_path / 'demo.pth')
    feats = str(tmp_path / 'feats.pth')
    proc = run_tool(TOOL, DEMO_CONFIG, ckpt, '--train-dir',
                    str(train), '--val-dir', str(val), '--feature',
                    'mean-patch', '--resize', '36', '--crop-size', '32',
                    '--k', '1', '5', '--num-workers', '2', '--device', 'cpu',
                    '--save-features', feats)
    scores = dict(
        (int(k), (float(t1), float(t5))) for k, t1, t5 in re.findall(
            r'^(\d+)-NN .*Top-1 ([\d.]+), Top-5 ([\d.]+)$', proc.stdout,
            re.M))
    assert sorted(scores) == [1, 5]
    assert scores[5][0] >= 80.0  # chance: 20 %
    assert scores[5][1] == 100.0
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info['num_train'] == 30 and info['num_val'] == 20
    assert info['knn']['5']['top1'] == scores[5][0]
    # The saved features give the same numbers without the model.
    again = load_tool(TOOL).main([
        DEMO_CONFIG, ckpt, '--load-features', feats, '--k', '1', '5',
        '--feature', 'mean-patch'
    ])
    assert again['knn'] == info['knn']


def test_tool_rejects_mismatched_class_folders(tmp_path):
    train = _make_split(tmp_path / 'train', 1, 0)
    val = _make_split(tmp_path / 'val', 1, 1)
    (val / 'extra').mkdir()
    cv2.imwrite(str(val / 'extra' / '0.png'), np.zeros((8, 8, 3), np.uint8))
    tool = load_tool(TOOL)
    with pytest.raises(ValueError, match='extra'):
        tool.main([
            DEMO_CONFIG,
            save_demo_checkpoint(tmp_path / 'demo.pth'), '--train-dir',
            str(train), '--val-dir',
            str(val), '--num-workers', '0', '--device', 'cpu'
        ])
