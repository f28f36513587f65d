"""DAVIS-2017 label propagation: J/F metrics, propagation and the tool."""
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# --import-mode=importlib puts no test folder on sys.path.
sys.path.insert(0, str(Path(__file__).parent))
from dense_eval_utils import (  # noqa: E402
    make_davis, object_labels, save_demo_checkpoint, write_label)
from helpers import DEMO_CONFIG, load_tool, run_tool  # noqa: E402

from selfpatch_mm.evaluation import (
    boundary_f_measure,  # noqa: E402
    boundary_map,
    davis_frame_size,
    db_statistics,
    evaluate_davis,
    format_davis_table,
    list_frames,
    neighbourhood_mask,
    propagate_labels,
    read_label,
    read_palette,
    region_similarity,
    segment_davis,
    segment_video,
    summarize_davis,
    write_davis_csv)

TOOL = 'tools/analysis_tools/davis_label_propagation.py'


@pytest.fixture(scope='module')
def davis(tmp_path_factory):
    return make_davis(tmp_path_factory.mktemp('davis') / 'DAVIS')


def _write_results(res_root,
                   shift: int,
                   h: int = 64,
                   w: int = 128,
                   num_frames: int = 6):
    (res_root / 'cars').mkdir(parents=True)
    for t in range(num_frames):
        write_label(res_root / 'cars' / f'{t:05d}.png',
                    object_labels(h, w, t, shift))
    return res_root


def test_region_similarity():
    a = np.zeros((8, 8), bool)
    b = np.zeros((8, 8), bool)
    a[:, :4] = True
    b[:, 2:6] = True
    assert region_similarity(a, b) == pytest.approx(16 / 48)
    assert region_similarity(a, a) == 1.0
    assert region_similarity(~a & a, ~b & b) == 1.0  # both empty


def test_boundary_map_and_f_measure():
    mask = np.zeros((40, 40), bool)
    mask[10:20, 10:20] = True
    bmap = boundary_map(mask)
    # A pixel is on the boundary when its east, south or south-east
    # neighbour differs: the outer rim above/left, the inner rim
    # below/right (boundaries sit half a pixel towards the origin).
    expected = np.zeros_like(mask)
    expected[9, 9:20] = expected[9:20, 9] = True
    expected[19, 10:20] = expected[10:20, 19] = True
    assert np.array_equal(bmap, expected)
    # Tolerance: ceil(0.008 * diagonal) = 1 pixel on a 40x40 image.
    assert boundary_f_measure(np.roll(mask, 1, 1), mask) == 1.0
    assert boundary_f_measure(np.roll(mask, 5, 1), mask) < 0.5
    assert boundary_f_measure(np.zeros_like(mask), mask) == 0.0
    assert boundary_f_measure(np.zeros_like(mask), np.zeros_like(mask)) == 1


def test_perfect_masks_score_one(davis):
    ann = davis / 'Annotations' / '480p'
    summary = summarize_davis(evaluate_davis(str(ann), str(ann), ['cars']))
    assert summary['J&F-Mean'] == 1.0
    assert summary['J-Mean'] == 1.0 and summary['F-Mean'] == 1.0
    assert [r[0] for r in summary['per_object']] == ['cars_1', 'cars_2']
    assert 'J&F-Mean' in format_davis_table(summary)


def _disk_iou(shift: int) -> float:
    """Mean IoU of the disk (object 2) and its shifted copy over the scored
    frames 1..4 (DAVIS leaves out the first and the last frame)."""
    ious = []
    for t in range(1, 5):
        a = object_labels(64, 128, t) == 2
        b = object_labels(64, 128, t, shift) == 2
        ious.append((a & b).sum() / (a | b).sum())
    return float(np.mean(ious))


def test_shifted_masks_known_scores(davis, tmp_path):
    """Known answers: the 21x21 square shifted by d pixels has
    J = 21 (21 - d) / (21 (21 + d)); a 1-pixel shift lies within the
    boundary tolerance (ceil(0.008 * diagonal) = 2 pixels on 128x64), so F
    is exactly 1, an 8-pixel one does not."""
    ann = str(davis / 'Annotations' / '480p')
    small = summarize_davis(
        evaluate_davis(ann, str(_write_results(tmp_path / 'a', 1)), ['cars']))
    big = summarize_davis(
        evaluate_davis(ann, str(_write_results(tmp_path / 'b', 8)), ['cars']))
    (sq1, j1, f1), (disk1, j2, f2) = small['per_object']
    assert (sq1, disk1) == ('cars_1', 'cars_2')
    assert j1 == pytest.approx(20 / 22) and f1 == 1.0
    assert j2 == pytest.approx(_disk_iou(1)) and f2 == 1.0
    assert small['F-Mean'] == 1.0
    assert small['J&F-Mean'] == pytest.approx((20 / 22 + _disk_iou(1)) / 4 +
                                              0.5)
    (_, j1, f1), (_, j2, f2) = big['per_object']
    assert j1 == pytest.approx(13 / 29) and j2 == pytest.approx(_disk_iou(8))
    assert f1 < 1.0 and f2 < 1.0


def test_missing_or_bad_results_are_reported(davis, tmp_path):
    ann = str(davis / 'Annotations' / '480p')
    with pytest.raises(FileNotFoundError, match='00001.png'):
        evaluate_davis(ann, str(tmp_path), ['cars'])
    res = _write_results(tmp_path / 'r', 0)
    write_label(res / 'cars' / '00002.png', np.full((64, 128), 3, np.uint8))
    with pytest.raises(ValueError, match='object id 3'):
        evaluate_davis(ann, str(res), ['cars'])


def test_db_statistics_planted_values():
    """Mean, recall (> 0.5, strictly) and decay over the reference's four
    overlapping quantile bins, computed by hand."""
    # n = 10: ids = round(linspace(1, 10, 5)) - 1 = [0, 2, 5, 7, 9], so
    # bin 0 = v[0:3] and bin 3 = v[7:10].
    v = np.array([1, 1, 0.5, 1, 1, 0.5, 0.5, 0.5, 0, 0])
    mean, recall, decay = db_statistics(v)
    assert mean == pytest.approx(0.6)
    assert recall == pytest.approx(0.4)  # the 0.5 frames do not count
    assert decay == pytest.approx(2.5 / 3 - 0.5 / 3)
    # n = 4: ids = [0, 1, 2, 2, 3], bin 0 = v[0:2], bin 3 = v[2:4].
    assert db_statistics(np.array([1, 0, 0.5, 0]))[2] == pytest.approx(0.25)
    assert all(np.isnan(x) for x in db_statistics(np.zeros(0)))


def _planted_sequence(root, pattern):
    """A 12-frame sequence with two square objects; the result keeps object
    2 exact and object 1 exact on frames ``pattern[t - 1] == 1``, empty
    otherwise (so its J and F are 1 or 0 per scored frame)."""
    gt = np.zeros((32, 64), np.uint8)
    gt[4:16, 4:16] = 1
    gt[4:16, 40:52] = 2
    for sub in ('ann/seq', 'res/seq'):
        (root / sub).mkdir(parents=True)
    for t in range(len(pattern) + 2):
        write_label(root / 'ann' / 'seq' / f'{t:05d}.png', gt)
        keep = t == 0 or t > len(pattern) or pattern[t - 1]
        write_label(root / 'res' / 'seq' / f'{t:05d}.png',
                    gt if keep else np.where(gt == 1, 0, gt))
    return str(root / 'ann'), str(root / 'res')


def test_csv_files_follow_davis2017_evaluation(tmp_path):
    ann, res = _planted_sequence(tmp_path, [1, 1, 0, 1, 1, 0, 0, 0, 0, 0])
    results = evaluate_davis(ann, res, ['seq'])
    summary = summarize_davis(results)
    # Object 1: mean = recall = 4/10, decay = mean(1, 1, 0) - mean(0, 0, 0)
    # = 2/3; object 2 is exact (1, 1, 0). Global = means over objects.
    assert summary['J-Mean'] == pytest.approx(0.7)
    assert summary['J-Recall'] == pytest.approx(0.7)
    assert summary['J-Decay'] == pytest.approx(1 / 3)
    assert summary['F-Decay'] == pytest.approx(1 / 3)
    paths = write_davis_csv(summary, str(tmp_path / 'res'), 'val')
    assert [Path(p).name for p in paths] == [
        'global_results-val.csv', 'per-sequence_results-val.csv'
    ]
    assert Path(paths[0]).read_text() == (
        'J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n'
        '0.700,0.700,0.700,0.333,0.700,0.700,0.333\n')
    assert Path(paths[1]).read_text() == ('Sequence,J-Mean,F-Mean\n'
                                          'seq_1,0.400,0.400\n'
                                          'seq_2,1.000,1.000\n')
    # Parallel scoring gives the very same numbers.
    parallel = evaluate_davis(ann, res, ['seq', 'seq'], nproc=2)
    for out in parallel.values():
        assert np.array_equal(out['J'], results['seq']['J'])
        assert np.array_equal(out['F'], results['seq']['F'])


def test_frame_size_follows_official_rounding():
    assert davis_frame_size(480, 854) == (480, 832)
    assert davis_frame_size(854, 480) == (832, 480)
    assert davis_frame_size(60, 130, resolution=60) == (60, 128)


def test_propagation_copies_labels_of_identical_patches():
    torch.manual_seed(0)
    hw, k_cls = (4, 5), 3
    feats = torch.nn.functional.normalize(torch.randn(20, 16), dim=1)
    labels = torch.nn.functional.one_hot(
        torch.randint(0, k_cls, (20, )), k_cls).T.float()
    out = propagate_labels(feats, feats[None], labels[None], topk=1,
                           mask=neighbourhood_mask(hw, 1))
    assert torch.equal(out, labels)
    # Source patch j+1 holds the feature of target patch j: unrestricted,
    # each target takes the label of its perfect match ...
    shifted = feats.roll(1, 0)
    out = propagate_labels(feats, shifted[None], labels[None], topk=1)
    assert torch.equal(out, labels.roll(-1, 1))
    # ... but with radius 0 only the source patch at the same position.
    out = propagate_labels(feats, shifted[None], labels[None], topk=1,
                           mask=neighbourhood_mask(hw, 0))
    assert torch.equal(out, labels)


def test_colour_features_propagate_well(davis, tmp_path):
    """Colour is an ideal feature for this video: propagation with it must
    track both objects, which checks the whole pipeline (resizing,
    context queue, upsampling, writing)."""

    def extract(img):
        x = torch.from_numpy(img).float().permute(2, 0, 1) - 128
        return torch.nn.functional.avg_pool2d(x[None], 8)[0]

    first = str(davis / 'Annotations' / '480p' / 'cars' / '00000.png')
    (tmp_path / 'cars').mkdir()
    segment_video(
        list_frames(str(davis / 'JPEGImages' / '480p' / 'cars')),
        read_label(first),
        extract,
        8,
        str(tmp_path / 'cars'),
        read_palette(first),
        resolution=64)
    summary = summarize_davis(
        evaluate_davis(
            str(davis / 'Annotations' / '480p'), str(tmp_path), ['cars']))
    assert summary['J&F-Mean'] > 0.7


@pytest.mark.slow
def test_tool_end_to_end(tmp_path):
    """Frames of 60x130 pixels: the resized 60x128 frames are not a multiple
    of the 8-pixel patches, so the tool must crop as the official code."""
    data = make_davis(
        tmp_path / 'DAVIS', h=60, w=130, num_frames=4, seqs=['cars', 'dogs'])
    ckpt = save_demo_checkpoint(tmp_path / 'demo.pth')
    out = tmp_path / 'results'
    proc = run_tool(TOOL,
                    DEMO_CONFIG, ckpt, '--data-root', str(data), '--out-dir',
                    str(out), '--resolution', '60', '--device', 'cpu',
                    '--nproc', '2')
    first = data / 'Annotations' / '480p' / 'cars' / '00000.png'
    for seq in ('cars', 'dogs'):
        names = sorted(p.name for p in (out / seq).iterdir())
        assert names == [f'{t:05d}.png' for t in range(4)]
        for name in names:
            img = Image.open(out / seq / name)
            assert img.size == (130, 60) and img.mode == 'P'
            assert img.getpalette()[:9] == Image.open(first).getpalette()[:9]
    assert np.array_equal(
        read_label(str(out / 'cars' / '00000.png')), read_label(str(first)))
    for row in ('cars_1', 'cars_2', 'dogs_1', 'dogs_2'):
        assert row in proc.stdout
    scores = re.findall(r'^\s*([01]\.\d{4})\s+([01]\.\d{4})',
                        proc.stdout.split('J&F-Mean')[-1], re.M)
    jf, j = map(float, scores[0])
    rows = (out / 'global_results-val.csv').read_text().splitlines()
    assert rows[0] == ('J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,'
                       'F-Decay')
    values = [float(v) for v in rows[1].split(',')]
    assert values[0] == pytest.approx(jf, abs=1e-3)
    assert values[1] == pytest.approx(j, abs=1e-3)
    # J&F is by definition the mean of J and F
    assert jf == pytest.approx((values[1] + values[4]) / 2, abs=1e-3)
    seq_rows = (out / 'per-sequence_results-val.csv').read_text().split()
    assert seq_rows[0] == 'Sequence,J-Mean,F-Mean'
    assert [r.split(',')[0] for r in seq_rows[1:]] == [
        'cars_1', 'cars_2', 'dogs_1', 'dogs_2'
    ]

    # Two worker processes gave the labels one process gives (up to float
    # reduction order in the workers' thread pools).
    serial = tmp_path / 'serial'
    segment_davis(['cars', 'dogs'],
                  str(data / 'JPEGImages' / '480p'),
                  str(data / 'Annotations' / '480p'),
                  str(serial), (DEMO_CONFIG, ckpt, 'teacher', 'cpu'),
                  resolution=60)
    for seq in ('cars', 'dogs'):
        for name in sorted(p.name for p in (out / seq).iterdir()):
            a = read_label(str(out / seq / name))
            b = read_label(str(serial / seq / name))
            assert np.mean(a == b) > 0.99, (seq, name)

    # --eval-only re-scores the written results; a missing split is a clear
    # error.
    tool = load_tool(TOOL)
    args = [
        DEMO_CONFIG, ckpt, '--data-root',
        str(data), '--out-dir',
        str(out), '--eval-only'
    ]
    assert tool.main(args)['J&F-Mean'] == pytest.approx(jf, abs=1e-4)
    shutil.rmtree(data / 'ImageSets')
    with pytest.raises(FileNotFoundError, match='ImageSets/2017/val.txt'):
        tool.main(args)


def test_worker_load_error_is_reported(tmp_path):
    """A checkpoint that cannot be read fails a parallel run's first job
    with the reason (a raising Pool initializer would make the Pool restart
    workers forever)."""
    import cv2

    from selfpatch_mm.evaluation import davis_propagation
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    cv2_threads = cv2.getNumThreads()
    try:
        davis_propagation._init_worker((DEMO_CONFIG, str(bad), 'teacher',
                                        'cpu'), {}, torch.get_num_threads())
        with pytest.raises(Exception, match='bad.pth'):
            davis_propagation._segment_job(('a', 'x', 'y', 'z'))
    finally:
        davis_propagation._WORKER.clear()
        cv2.setNumThreads(cv2_threads)


@pytest.mark.parametrize('num_workers', [0, 2])
def test_frame_loader_gives_the_opencv_frames(davis, num_workers):
    """The Runner-built frame loader (mmpretrain CustomDataset, mmcv decode
    and resize) gives exactly the pixels of cv2.imread + cv2.resize, in
    frame order, so J&F does not change."""
    import cv2

    from selfpatch_mm.evaluation import build_frame_loader, iter_frames
    seq_dir = str(davis / 'JPEGImages' / '480p' / 'cars')
    frames = list(iter_frames(build_frame_loader(seq_dir, (64, 96),
                                                 num_workers)))
    assert [p for p, _ in frames] == list_frames(seq_dir)
    for path, img in frames:
        ref = cv2.resize(cv2.imread(path, cv2.IMREAD_COLOR), (96, 64))
        assert img.dtype == np.uint8 and np.array_equal(img, ref), path
