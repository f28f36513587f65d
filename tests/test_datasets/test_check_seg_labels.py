"""CheckSegLabels: label values against num_classes, with real png maps."""
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmseg.datasets.transforms import LoadAnnotations

from selfpatch_mm.datasets.transforms.check_seg_labels import CheckSegLabels


def _load(tmp_path: Path, values: np.ndarray, reduce_zero_label: bool):
    """Write ``values`` as a png and load it as an mmseg pipeline does."""
    path = tmp_path / 'ADE_val_00000001.png'
    cv2.imwrite(str(path), values.astype(np.uint8))
    results = dict(
        seg_map_path=str(path),
        reduce_zero_label=reduce_zero_label,
        seg_fields=[])
    return LoadAnnotations(reduce_zero_label=reduce_zero_label)(results)


def test_valid_map_passes_unchanged(tmp_path: Path) -> None:
    # png 0 (unlabelled) -> 255, 1..4 -> 0..3
    raw = np.array([[0, 1, 2], [3, 4, 4]])
    results = _load(tmp_path, raw, reduce_zero_label=True)
    before = results['gt_seg_map'].copy()
    out = CheckSegLabels(num_classes=4)(results)
    assert out is results
    np.testing.assert_array_equal(out['gt_seg_map'], before)
    assert 255 in before  # the ignore value is allowed


def test_value_past_num_classes_names_file_and_value(tmp_path: Path) -> None:
    raw = np.array([[0, 1, 9], [3, 6, 4]])  # 9 -> 8 and 6 -> 5 are too big
    results = _load(tmp_path, raw, reduce_zero_label=True)
    with pytest.raises(ValueError) as err:
        CheckSegLabels(num_classes=4)(results)
    msg = str(err.value)
    assert 'ADE_val_00000001.png' in msg
    assert re.search(r'label value\(s\) 5, 8, but num_classes is 4', msg)
    assert 'pixel values 6, 9' in msg
    assert 'num_classes to at least 9' in msg


def test_without_reduce_zero_label_suggests_it(tmp_path: Path) -> None:
    raw = np.array([[0, 1], [2, 4]])  # 4 classes stored as 1..4
    results = _load(tmp_path, raw, reduce_zero_label=False)
    with pytest.raises(ValueError, match='reduce_zero_label=True'):
        CheckSegLabels(num_classes=4)(results)
    # a custom ignore index is accepted
    results['gt_seg_map'][results['gt_seg_map'] == 4] = 100
    assert CheckSegLabels(num_classes=4, ignore_index=100)(results)


def test_misuse_is_reported() -> None:
    with pytest.raises(KeyError, match='after .*LoadAnnotations'):
        CheckSegLabels(num_classes=4)(dict(img=np.zeros((2, 2, 3))))
    with pytest.raises(ValueError, match='positive int'):
        CheckSegLabels(num_classes=0)
