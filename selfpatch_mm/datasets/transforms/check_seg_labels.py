# Copyright (c) selfpatch_mm contributors. All rights reserved.
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

__all__ = ['CheckSegLabels']


@TRANSFORMS.register_module()
class CheckSegLabels(BaseTransform):
    """Fail early, and clearly, on label values the decode head cannot take.

    A semantic map value ``v`` with ``v >= num_classes`` that is not the
    ignore index makes the cross-entropy loss index out of range: on the GPU
    a device-side assert with no file name, on the CPU an ``IndexError`` deep
    in the loss; in evaluation ``IoUMetric`` drops it silently.  Put this
    transform right after ``LoadAnnotations`` (the values checked are the
    ones after ``reduce_zero_label`` and any ``label_map``) so the error
    names the annotation file, the bad values and how to fix them.

    Used by the ADE20K transfer configs of SelfPatch
    (`Yun et al., CVPR 2022 <https://arxiv.org/abs/2206.07990>`_).

    Required keys: ``gt_seg_map``.  Optional keys used in the message:
    ``seg_map_path``, ``reduce_zero_label``.  Nothing is modified.

    Args:
        num_classes (int): Number of classes of the decode head.  Keep it
            equal to ``model.decode_head.num_classes``.
        ignore_index (int): Label value the loss and the metric ignore.
            Defaults to 255 (mmseg's default, and what ``reduce_zero_label``
            maps 0 to).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f'CheckSegLabels: num_classes must be a positive int, got '
                f'{num_classes!r}.')
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> Optional[dict]:
        """Check ``results['gt_seg_map']``.

        Args:
            results (dict): Result dict with a loaded ``gt_seg_map``.

        Returns:
            dict: ``results``, unchanged.

        Raises:
            KeyError: If no ``gt_seg_map`` was loaded before this transform.
            ValueError: If the map holds a value ``>= num_classes`` other
                than ``ignore_index``.
        """
        if 'gt_seg_map' not in results:
            raise KeyError(
                'CheckSegLabels needs `gt_seg_map`: put it after '
                "dict(type='LoadAnnotations') in the pipeline.")
        seg = results['gt_seg_map']
        # max() first: the common, valid case costs one pass over the map.
        if seg.size == 0 or int(seg.max()) < self.num_classes:
            return results
        bad = np.unique(seg[(seg >= self.num_classes)
                            & (seg != self.ignore_index)])
        if bad.size:
            raise ValueError(self._message(results, bad))
        return results

    def _message(self, results: dict, bad: np.ndarray) -> str:
        """Build the error text for the out-of-range values ``bad``."""
        path = results.get('seg_map_path', '<unknown annotation file>')
        reduced = bool(results.get('reduce_zero_label', False))
        shown = ', '.join(str(int(v)) for v in bad[:10])
        if bad.size > 10:
            shown += f', ... ({bad.size} values)'
        msg = (f'Annotation {path!r} has label value(s) {shown}, but '
               f'num_classes is {self.num_classes} (valid labels: 0..'
               f'{self.num_classes - 1}, ignore index {self.ignore_index})')
        if reduced:
            raw = ', '.join(str(int(v) + 1) for v in bad[:10])
            msg += (f'; with reduce_zero_label=True these are the pixel '
                    f'values {raw} in the png (0 is ignored, v becomes v-1)')
        needed = int(bad.max()) + 1
        unlabelled = 0 if reduced else self.ignore_index
        msg += (
            '. Fix the data or the config: either set num_classes to at least '
            f'{needed} in model.decode_head, model.auxiliary_head (if any) '
            'and this CheckSegLabels transform (train and test pipelines), '
            'or remap the annotation values into range (png value '
            f'{unlabelled} for unlabelled pixels)')
        if not reduced:
            msg += (', or set reduce_zero_label=True if 0 means "unlabelled" '
                    'in your annotations')
        return msg + '.'

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')
