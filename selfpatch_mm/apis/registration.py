# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Register this project's modules, as ``mmdet.utils.register_all_modules``
does for mmdet.

``import selfpatch_mm`` registers nothing (it stays light: no mmdet, no
mmseg). Configs register what they use through ``custom_imports``; tools
that build from any config call :func:`register_all_modules` first, so a
config without ``custom_imports`` still finds our types.
"""

__all__ = ['register_all_modules']


def register_all_modules(init_default_scope: bool = False) -> None:
    """Import the subpackages whose decorators fill mmpretrain's registries.

    ``CheckSegLabels`` (mmseg's ``TRANSFORMS``) is left out: it would load
    mmseg; segmentation configs import its module themselves.

    Args:
        init_default_scope (bool): Also make ``'mmpretrain'`` the default
            scope (as mmpretrain's own ``register_all_modules``). Defaults
            to False: the Runner sets the config's ``default_scope``.
    """
    # Plain imports: the modules register with their class decorators.
    import selfpatch_mm.datasets  # noqa: F401
    import selfpatch_mm.engine  # noqa: F401
    import selfpatch_mm.models  # noqa: F401
    if init_default_scope:
        from mmpretrain.utils import register_all_modules as _mmpretrain
        _mmpretrain(init_default_scope=True)
