"""Patch pictures: files, sizes, and positives equal to the neck's."""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

# --import-mode=importlib puts no test folder on sys.path.
sys.path.insert(0, str(Path(__file__).parent))
from dense_eval_utils import save_demo_checkpoint  # noqa: E402
from helpers import DEMO_CONFIG, load_tool  # noqa: E402

from selfpatch_mm.evaluation import draw_positives  # noqa: E402
from selfpatch_mm.evaluation import (load_pretrained_selfpatch,  # noqa: E402
                                     pca_rgb, resize_to_patches,
                                     visualize_patches)
from selfpatch_mm.models.utils import match_positives  # noqa: E402

TOOL = 'tools/analysis_tools/visualize_patches.py'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return save_demo_checkpoint(tmp_path_factory.mktemp('ckpt') / 'demo.pth')


def _image(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    cv2.circle(img, (w // 3, h // 2), min(h, w) // 4, (0, 0, 255), -1)
    return img


def test_resize_to_patches_any_size():
    assert resize_to_patches(_image(70, 101), 64, 8).shape == (64, 96, 3)
    assert resize_to_patches(_image(300, 50), 20, 8).shape == (120, 16, 3)


def test_positives_drawn_are_the_necks(checkpoint, tmp_path):
    model = load_pretrained_selfpatch(DEMO_CONFIG, checkpoint, device='cpu')
    img = _image(70, 101)
    res = visualize_patches(model, img, str(tmp_path), size=64, num_queries=5)
    assert res['hw'] == (8, 12) and len(res['queries']) == 5
    # Independently: the training neck on the same resized image.
    x = model.preprocess(resize_to_patches(img, 64, 8))[None]
    tokens, hw = model.neck.to_tokens(model.backbone(x)[-1])
    idx, valid = model.neck.positives(tokens, hw)
    assert torch.equal(idx, match_positives(tokens, hw, model.neck.k)[0])
    for q in res['queries']:
        expected = [int(p) for p, ok in zip(idx[0, q], valid[0, q]) if ok]
        assert res['positives'][q] == expected
        assert len(expected) == model.neck.k

    # The picture marks exactly those cells: a thick outline in the query
    # colour on each positive, none on the other candidates.
    q = res['queries'][0]
    canvas = draw_positives(
        np.zeros((8 * 24, 12 * 24, 3), np.uint8), hw, [q], idx[0].cpu(),
        valid[0].cpu())
    colour = canvas[(q // 12) * 24 + 12, (q % 12) * 24 + 12]
    assert colour.any()
    for cell in set(range(96)) - {q}:
        y, x = divmod(cell, 12)
        on_edge = (canvas[y * 24 + 12, x * 24 + 1] == np.array([0, 0,
                                                                255])).all()
        assert on_edge == (cell in res['positives'][q]), cell


def test_pca_rgb_range_and_structure():
    feats = torch.zeros(6, 4)
    feats[:3, 0] = 5.0  # two clusters along one direction
    rgb = pca_rgb(feats)
    assert rgb.shape == (6, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert np.allclose(rgb[:3, 0], rgb[0, 0]) and rgb[0, 0] != rgb[3, 0]


def test_tool_writes_pictures(checkpoint, tmp_path, capsys):
    """The tool's command line, through its ``main(argv)`` in-process (it
    trains nothing and needs no fresh process)."""
    img_path = tmp_path / 'img.jpg'
    cv2.imwrite(str(img_path), _image(75, 110))
    out = tmp_path / 'pictures'
    load_tool(TOOL).main([
        DEMO_CONFIG, checkpoint,
        str(img_path), '--out-dir',
        str(out), '--size', '48', '--queries', '3', '--scale', '4',
        '--device', 'cpu'
    ])
    assert 'query patch' in capsys.readouterr().out
    h, w = 48 * 4, 72 * 4  # 75x110 resized to 48x70, snapped to 48x72
    heads = 3
    sizes = {
        'positives.png': (h, w),
        'aggregation_attention.png': (h, (heads + 1) * w),
        'last_block_attention.png': (2 * h, heads * w),
        'pca.png': (h, 2 * w),
    }
    for name, size in sizes.items():
        picture = cv2.imread(str(out / name))
        assert picture is not None, name
        assert picture.shape[:2] == size, name


def test_image_loader_reads_a_folder_as_opencv(tmp_path):
    """The Runner-built loader of the picture tool lists a folder in order
    and gives the pixels of cv2.imread."""
    from selfpatch_mm.evaluation import (build_image_loader, iter_images,
                                         list_images)
    (tmp_path / 'imgs' / 'sub').mkdir(parents=True)
    paths = [tmp_path / 'imgs' / 'b.png', tmp_path / 'imgs' / 'sub' / 'a.jpg']
    for i, p in enumerate(paths):
        cv2.imwrite(str(p), _image(20 + i, 30))
    (tmp_path / 'imgs' / 'notes.txt').write_text('not an image')
    listed = list_images(str(tmp_path / 'imgs'), str(tmp_path / 'l.txt'))
    assert listed == [str(p) for p in paths]
    got = list(iter_images(build_image_loader(str(tmp_path / 'l.txt'))))
    assert [p for p, _ in got] == listed
    for path, img in got:
        assert np.array_equal(img, cv2.imread(path, cv2.IMREAD_COLOR))
    with pytest.raises(FileNotFoundError, match='No image'):
        list_images(str(tmp_path / 'missing.jpg'), str(tmp_path / 'm.txt'))
