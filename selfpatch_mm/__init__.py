# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""selfpatch_mm: SelfPatch (CVPR 2022) on the OpenMMLab 2.x stack.

Importing the package itself is light: it loads no model code and neither
mmdet nor mmseg. The modules register in mmpretrain's registries when their
subpackage is imported, which configs do through ``custom_imports``:

* ``selfpatch_mm.models``: algorithm, backbones, necks, heads, losses, data
  preprocessor (mmdet/mmseg configs name the backbone
  ``'mmpretrain.SelfPatchDenseViT'``);
* ``selfpatch_mm.datasets``: the multi-crop and image-loading transforms;
* ``selfpatch_mm.engine``: hooks and optimizer wrappers;
* ``selfpatch_mm.datasets.transforms.check_seg_labels``: ``CheckSegLabels``
  in mmseg's ``TRANSFORMS`` (imported by the ADE20K configs only).

See ``docs/architecture.md``.
"""
from .version import __version__

__all__ = ['__version__']
