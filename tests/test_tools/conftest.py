"""pytest settings of the tools tests."""


def pytest_configure(config) -> None:
    """Register the ``dist`` marker (multi-process runs; ``-m "not dist"``
    skips them)."""
    config.addinivalue_line(
        'markers', 'dist: starts several processes with torchrun (slow)')
