# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Check that a checkpoint's weights fit a model before training on them.

mmengine loads ``load_from`` and ``Pretrained`` weights with
``strict=False``: a file of another architecture prints hundreds of
warnings, then a randomly initialised network trains and the run exits 0.
Here, when most of the weights that matter (the backbone's) are missing or
of another shape, the load fails with a short summary instead, unless a
partial load is asked for explicitly.
"""
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

from .keys import get_state_dict, summarise_prefixes
from .layouts import detect_layout

__all__ = [
    'CheckpointMismatchError', 'LoadReport', 'match_state_dict',
    'check_load_report', 'verify_load_from'
]

# mmengine's default ``revise_keys`` of ``load_checkpoint`` / ``load_from``.
DEFAULT_REVISE_KEYS: Sequence[Tuple[str, str]] = ((r'^module\.', ''), )


class CheckpointMismatchError(ValueError):
    """Most weights of a checkpoint do not fit the model."""


@dataclass
class LoadReport:
    """How a state dict fits a model's.

    Attributes:
        loaded (list[str]): Keys present in both, with equal shapes.
        missing (list[str]): Model keys that the file lacks.
        unexpected (list[str]): File keys that the model lacks.
        mismatched (list[str]): ``'key: file (..) vs model (..)'`` for keys
            of both with different shapes.
    """
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Number of model keys."""
        return len(self.loaded) + len(self.missing) + len(self.mismatched)

    def summary(self, examples: int = 3) -> str:
        """``'loaded 2/51, missing 49 (e.g. ...), unexpected ...'``."""
        parts = [f'loaded {len(self.loaded)}/{self.total}']
        for name, keys in (('missing', self.missing),
                           ('unexpected', self.unexpected),
                           ('shape mismatch', self.mismatched)):
            if keys:
                shown = ', '.join(keys[:examples])
                more = ', ...' if len(keys) > examples else ''
                parts.append(f'{name} {len(keys)} (e.g. {shown}{more})')
        return '; '.join(parts)


def match_state_dict(model_state: Mapping[str, Any],
                     file_state: Mapping[str, Any]) -> LoadReport:
    """Compare a model's state dict with a file's (names and shapes)."""
    report = LoadReport()
    for key, value in model_state.items():
        if key not in file_state:
            report.missing.append(key)
            continue
        theirs = getattr(file_state[key], 'shape', None)
        ours = getattr(value, 'shape', None)
        if theirs is not None and ours is not None and \
                tuple(theirs) != tuple(ours):
            report.mismatched.append(
                f'{key}: file {tuple(theirs)} vs model {tuple(ours)}')
        else:
            report.loaded.append(key)
    report.unexpected = sorted(set(file_state) - set(model_state))
    return report


def _likely_cause(report: LoadReport, model_keys: Iterable[str],
                  file_keys: Iterable[str]) -> str:
    model_keys, file_keys = list(model_keys), list(file_keys)
    if report.mismatched and len(report.mismatched) >= len(report.missing):
        return ('the names match but the shapes do not: the file is for '
                'another architecture (arch, patch_size, img_size or '
                'num_classes differ from the config)')
    own = {k for k in model_keys}
    for prefix in sorted({'.'.join(k.split('.')[:n]) + '.'
                          for k in file_keys for n in (1, 2)
                          if k.count('.') >= n}):
        stripped = {k[len(prefix):] for k in file_keys if k.startswith(prefix)}
        if len(stripped & own) > len(report.loaded):
            return (f'the weights sit under "{prefix}" in the file (set '
                    f"prefix='{prefix}' or checkpoint_key, or extract them "
                    'with tools/model_converters/extract_backbone.py)')
    bare = {k.split('.', 1)[1] for k in own if '.' in k}
    if len(bare & set(file_keys)) > len(report.loaded):
        return ('the file holds a bare backbone (keys without the model\'s '
                "'backbone.' prefix, as extract_backbone.py writes): give it "
                "to the backbone's init_cfg=dict(type='Pretrained', "
                'checkpoint=...) instead of load_from')
    return (f'the file is for another model: its keys start with '
            f'{summarise_prefixes(file_keys)}, the model\'s with '
            f'{summarise_prefixes(model_keys)}')


def check_load_report(report: LoadReport,
                      filename: str,
                      what: str = 'model',
                      model_keys: Optional[Iterable[str]] = None,
                      file_keys: Optional[Iterable[str]] = None,
                      allow_partial: bool = False,
                      min_loaded: float = 0.5,
                      allow_mismatch: bool = True,
                      how_to_allow: str = 'add allow_partial=True to the '
                      'init_cfg',
                      cause: Optional[str] = None) -> None:
    """Raise unless enough of ``report``'s keys loaded.

    Args:
        report (LoadReport): From :func:`match_state_dict` (restricted to the
            keys that matter, e.g. the backbone's).
        filename (str): Named in the message.
        what (str): What is loaded (``'backbone'``), for the message.
        model_keys, file_keys (Iterable[str], optional): For the likely
            cause; default to the report's own keys.
        allow_partial (bool): Never raise (an explicit partial load).
        min_loaded (float): Fraction of keys that must load.
        allow_mismatch (bool): Whether a few shape mismatches are tolerated
            (False: any mismatch raises).
        how_to_allow (str): How the user asks for a partial load here.
        cause (str, optional): The likely cause, when the caller knows it;
            otherwise guessed from the keys.

    Raises:
        CheckpointMismatchError: With the summary and the likely cause.
    """
    if allow_partial or report.total == 0:
        return
    enough = len(report.loaded) >= min_loaded * report.total
    if enough and (allow_mismatch or not report.mismatched):
        return
    if model_keys is None:
        model_keys = report.loaded + report.missing + [
            m.split(':')[0] for m in report.mismatched]
    if file_keys is None:
        file_keys = report.loaded + report.unexpected
    raise CheckpointMismatchError(
        f'{filename} does not fit the {what}: {report.summary()}. Likely '
        f'cause: {cause or _likely_cause(report, model_keys, file_keys)}. '
        'To load '
        f'only what fits on purpose, {how_to_allow}.')


def _revise(state: Mapping[str, Any],
            revise_keys: Sequence[Tuple[str, str]]) -> dict:
    for pattern, repl in revise_keys:
        state = {re.sub(pattern, repl, k): v for k, v in state.items()}
    return dict(state)


def verify_load_from(
        model: Any,
        filename: Optional[str],
        allow_partial: bool = False,
        revise_keys: Sequence[Tuple[str, str]] = DEFAULT_REVISE_KEYS
) -> Optional[LoadReport]:
    """Check a ``load_from`` file against a Runner's model before the run.

    Only the backbone decides (``backbone.*`` keys when the model has them,
    otherwise all keys): heads of another number of classes are normal when
    fine-tuning, a backbone that does not load is not.

    Args:
        model (nn.Module): ``runner.model`` (a DDP wrapper is unwrapped).
        filename (str, optional): ``cfg.load_from``; None does nothing.
        allow_partial (bool): ``cfg.allow_partial_load``.
        revise_keys: As in mmengine's ``load_checkpoint``.

    Returns:
        LoadReport | None: The backbone's report.

    Raises:
        CheckpointMismatchError: If most backbone keys do not fit.
    """
    if not filename:
        return None
    from mmengine.model import is_model_wrapper

    from .safe_load import load_checkpoint_file
    if is_model_wrapper(model):
        model = model.module
    ckpt = load_checkpoint_file(filename, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise CheckpointMismatchError(
            f'{filename} holds a {type(ckpt).__name__}, not a checkpoint '
            'dict (with a state_dict).')
    state = _revise(get_state_dict(ckpt), revise_keys)
    cause = None
    try:
        if detect_layout(ckpt).startswith('official'):
            cause = ("it is one of the authors' files: convert it first "
                     'with tools/model_converters/official_to_mm.py')
    except ValueError:  # an unknown layout: guess from the keys
        pass
    own = model.state_dict()
    has_backbone = any(k.startswith('backbone.') for k in own)
    part = {k: v for k, v in own.items()
            if k.startswith('backbone.') or not has_backbone}
    report = match_state_dict(part, state)
    if has_backbone:  # other parts' extra keys are not the backbone's
        report.unexpected = [k for k in report.unexpected
                             if k.startswith('backbone.')]
    check_load_report(
        report, filename, 'backbone' if has_backbone else 'model',
        model_keys=own, file_keys=state, allow_partial=allow_partial,
        cause=cause,
        how_to_allow='set allow_partial_load=True in the config '
        '(--cfg-options allow_partial_load=True)')
    return report
