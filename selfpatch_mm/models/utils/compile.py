# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""``torch.compile`` of model parts, and the compiler's counts.

Parts are compiled in place (``nn.Module.compile``): the module, its
parameters and its ``state_dict`` keys stay as they are (no ``_orig_mod.``
prefix), so checkpoints move freely between compiled and eager runs, the
optimizer and the EMA update keep working on the same tensors, and DDP's
hooks on those parameters still fire.
"""
from typing import Dict

from torch import nn

__all__ = ['COMPILE_DEFAULTS', 'compile_module', 'compile_counts']

#: ``dynamic=False``: one static graph per input shape (per crop
#: resolution), never the automatic dynamic-shape graph that a second shape
#: triggers. Dynamic graphs of the ViT crashed in inductor's backward on the
#: CPU (the patch-embedding input saved with the first shape's channels-last
#: strides: ``expected size 16==16, stride 27648==150528 at dim=0``), and
#: static graphs let inductor specialise every kernel to its shapes.
COMPILE_DEFAULTS = dict(dynamic=False)


def compile_module(module: nn.Module, **options) -> nn.Module:
    """Compile ``module``'s forward in place.

    Args:
        module (nn.Module): The module; it stays the same object.
        **options: ``torch.compile`` arguments (``mode``, ``backend``,
            ``options``, ``fullgraph``), over :data:`COMPILE_DEFAULTS`.

    Returns:
        nn.Module: ``module``.
    """
    module.compile(**dict(COMPILE_DEFAULTS, **options))
    return module


def compile_counts() -> Dict[str, int]:
    """Graphs compiled and graph breaks so far in this process.

    The counts are process-wide (every compiled function adds to them):
    compare two readings to count what happened between them.

    Returns:
        dict[str, int]: ``graphs`` (dynamo's unique graphs) and
        ``graph_breaks``.
    """
    from torch._dynamo.utils import counters
    return dict(graphs=int(counters['stats']['unique_graphs']),
                graph_breaks=int(sum(counters['graph_break'].values())))
