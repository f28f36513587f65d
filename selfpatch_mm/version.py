"""Version of the selfpatch_mm package (read by ``setup.py``)."""

__version__ = '0.1.0'
