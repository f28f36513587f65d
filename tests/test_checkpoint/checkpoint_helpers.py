"""Helpers of the checkpoint-safety tests (importable by the test files;
the fixtures live in conftest.py)."""
import os
import shlex
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[2]
DEMO_CFG = str(REPO / 'configs' / 'selfpatch' /
               'selfpatch_vit-tiny-p8_1xb8-2e_demo.py')


class Payload:
    """Unpickling this runs ``touch MARKER``: what a malicious ``.pth``
    does with ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {shlex.quote(str(self.marker))}', ))


class PayloadFiles(NamedTuple):
    path: str  # local file
    url: str  # the same bytes, http://127.0.0.1:PORT/payload.pth
    marker: Path  # appears if the payload ever runs


def build_demo_model():
    """The demo SelfPatch model, built in mmpretrain's scope whatever scope
    an earlier test's Runner left current."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import selfpatch_mm.models  # noqa: F401  (registers the models)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(Config.fromfile(DEMO_CFG).model)
