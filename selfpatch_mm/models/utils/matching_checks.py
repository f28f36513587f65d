# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Checks of the SelfPatch matching settings, with messages that name the
value and its valid range.

A bad ``k``, window or border, or a crop whose patch grid is too small for
the window, would otherwise train silently and uselessly (every patch its own
positive, neighbours wrapping onto each other) or fail only at the first
iteration, after the data is loaded. :func:`check_matching_settings` runs
when the neck is built; :func:`check_patch_grid` for each crop size of the
config (:func:`check_crop_grids`) and for every new grid at forward time.
"""
from typing import Iterable, Sequence, Tuple, Union

__all__ = [
    'BORDERS', 'check_matching_settings', 'check_patch_grid',
    'check_crop_grids'
]

BORDERS = ('wrap', 'valid')


def check_matching_settings(k: int, window: int, border: str) -> None:
    """Validate ``k``, ``window`` and ``border`` of positive matching.

    Args:
        k (int): Positives per patch: 1 to ``window**2 - 1``.
        window (int): Neighbourhood side: an odd integer >= 3.
        border (str): One of :data:`BORDERS`.

    Raises:
        ValueError: Naming the bad value and the valid range.
    """
    if border not in BORDERS:
        raise ValueError(
            f'SelfPatch border must be one of {BORDERS}, got {border!r}.')
    if isinstance(window, bool) or not isinstance(window, int) or \
            window < 3 or window % 2 == 0:
        raise ValueError(
            f'SelfPatch window must be an odd integer >= 3 (3, 5, 7, ...), '
            f'got {window!r}.')
    neighbours = window * window - 1
    if isinstance(k, bool) or not isinstance(k, int) or \
            not 1 <= k <= neighbours:
        raise ValueError(
            f'SelfPatch k must be an integer in 1..{neighbours} (the '
            f'{neighbours} neighbours of a {window}x{window} window), got '
            f'{k!r}.')


def check_patch_grid(hw: Tuple[int, int], window: int,
                     what: str = 'input') -> None:
    """Validate a patch grid for a matching window.

    Args:
        hw (tuple[int, int]): The grid ``(H, W)`` in patches.
        window (int): The neighbourhood side.
        what (str): What gave the grid, for the message (e.g. ``'a 32x32
            crop with patch_size=16'``).

    Raises:
        ValueError: If the grid is smaller than 2x2 or than the window.
    """
    h, w = int(hw[0]), int(hw[1])
    if h < 2 or w < 2:
        raise ValueError(
            f'SelfPatch needs a patch grid of at least 2x2, but {what} gives '
            f'{h}x{w}: a patch has no neighbours to match. Use larger crops '
            'or a smaller patch size.')
    if h < window or w < window:
        raise ValueError(
            f'SelfPatch window={window} needs a patch grid of at least '
            f'{window}x{window}, but {what} gives {h}x{w}: the window would '
            f'cover the grid more than once. Use window <= {min(h, w)} '
            '(odd, >= 3) or larger crops.')


Size = Union[int, Sequence[int]]


def check_crop_grids(crop_sizes: Iterable[Size], patch_size: int,
                     window: int) -> None:
    """Validate every crop size against the patch size and the window.

    Args:
        crop_sizes (iterable): Crop sizes in pixels: ints (square) or
            ``(h, w)``.
        patch_size (int): The backbone's patch size.
        window (int): The neighbourhood side.

    Raises:
        ValueError: If a crop is not a multiple of the patch size, or its
            grid fails :func:`check_patch_grid`.
    """
    for size in crop_sizes:
        h, w = (size, size) if isinstance(size, int) else tuple(size)[:2]
        if h % patch_size or w % patch_size:
            raise ValueError(
                f'SelfPatch: a {h}x{w} crop is not a multiple of '
                f'patch_size={patch_size}; crop sizes must be multiples of '
                f'{patch_size}.')
        check_patch_grid((h // patch_size, w // patch_size), window,
                         f'a {h}x{w} crop with patch_size={patch_size}')
