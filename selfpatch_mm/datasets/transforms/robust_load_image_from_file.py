# Copyright (c) selfpatch_mm contributors. All rights reserved.
from typing import Optional

import mmcv
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS

__all__ = ['RobustLoadImageFromFile']


@TRANSFORMS.register_module()
class RobustLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` that names the file it cannot decode.

    mmcv's loader asserts on undecodable bytes (``imfrombytes`` returns None)
    and only ``ignore_empty`` catches exceptions. Here both cases either raise
    an ``OSError`` naming the file or, with ``skip_corrupt=True``, log a
    warning and return None so the dataset draws another image.

    Colour handling is cv2's ``IMREAD_COLOR`` (the default ``color_type``):
    grayscale and palette images become 3-channel, the alpha channel of RGBA
    images is dropped, and 16-bit images are scaled to 8 bits.

    Args:
        skip_corrupt (bool): Skip (with a warning) instead of failing.
        **kwargs: Arguments of ``mmcv.transforms.LoadImageFromFile``.
    """

    def __init__(self, skip_corrupt: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.skip_corrupt = skip_corrupt

    def transform(self, results: dict) -> Optional[dict]:
        filename = results['img_path']
        try:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
            img = mmcv.imfrombytes(
                img_bytes, flag=self.color_type, backend=self.imdecode_backend)
            if img is None:
                raise ValueError('the image decoder returned nothing')
        except Exception as e:  # any decoder/IO failure is reported the same
            if not self.skip_corrupt:
                raise OSError(
                    f'Cannot read image {filename!r} ({e}). Remove or '
                    'replace the file, or set skip_corrupt=True on '
                    'RobustLoadImageFromFile to skip unreadable images.'
                ) from e
            # The dataset draws another image when a transform returns None.
            print_log(
                f'Skipped: Cannot read image {filename!r} ({e}); another '
                'image is used instead.',
                logger='current',
                level=30)
            return None
        if self.to_float32:
            img = img.astype('float32')
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
