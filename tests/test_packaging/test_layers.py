"""The package's layers (docs/architecture.md): every import between its
subpackages points down, never up."""
import ast
from pathlib import Path
from typing import Dict, Set

PACKAGE = Path(__file__).resolve().parents[2] / 'selfpatch_mm'

#: What each subpackage may import of the others. ``utils`` is a leaf and
#: ``apis`` the top: nothing inside the package imports it.
ALLOWED: Dict[str, Set[str]] = {
    'utils': set(),
    'checkpoint': {'utils'},
    'datasets': {'utils'},
    'models': {'checkpoint', 'datasets', 'utils'},
    'engine': {'checkpoint', 'datasets', 'models', 'utils'},
    'evaluation': {'checkpoint', 'datasets', 'models', 'utils'},
    'apis': {'checkpoint', 'datasets', 'engine', 'evaluation', 'models',
             'utils'},
}


def _imported_subpackages(path: Path, source: str = None) -> Set[str]:
    """The ``selfpatch_mm.<sub>`` packages a module imports (relative
    imports resolved); ``source`` instead of the file's text."""
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    package = list(parts[:-1])  # the module's own package
    found = set()
    for node in ast.walk(ast.parse(source or path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                names = ['.'.join(base + ([node.module] if node.module
                                          else []))]
            else:
                names = [node.module or '']
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            bits = name.split('.')
            if bits[0] == 'selfpatch_mm' and len(bits) > 1:
                found.add(bits[1])
    return found


def test_every_import_points_down_the_layers():
    upward = []
    for path in sorted(PACKAGE.rglob('*.py')):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1:
            continue  # __init__.py and version.py
        sub = rel.parts[0]
        assert sub in ALLOWED, f'{sub}/ is not in the layer table'
        for dep in _imported_subpackages(path) - {sub, 'version'}:
            if dep not in ALLOWED[sub]:
                upward.append(f'{rel} imports selfpatch_mm.{dep}')
    assert not upward, '\n'.join(upward)


def test_the_layer_check_sees_an_upward_import():
    """The parser resolves relative imports (a check that saw nothing would
    pass on any layout)."""
    module = PACKAGE / 'engine' / 'hooks' / 'some_hook.py'
    source = ('from ..runners import x\n'  # selfpatch_mm.engine.runners
              'from ...models.utils import y\n'
              'import selfpatch_mm.apis.cli\n'
              'from . import z\n')
    assert _imported_subpackages(module, source) == {
        'engine', 'models', 'apis'}
