"""Packaging for selfpatch_mm.

torch, torchvision and mmcv are deliberately absent from ``install_requires``
(see ``requirements/mminstall.txt``): they need a specific install order and
build flags, which ``tools/install.sh`` handles, and listing them here could
make ``pip install -e .`` replace an already working torch.
"""
import os
import os.path as osp
import re
import shutil
import sys
import warnings
from typing import List

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def get_version() -> str:
    """Read ``__version__`` from ``selfpatch_mm/version.py`` without importing
    the package (its imports need torch and the OpenMMLab stack)."""
    with open(osp.join(HERE, 'selfpatch_mm', 'version.py'),
              encoding='utf-8') as f:
        match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", f.read(),
                          re.MULTILINE)
    if match is None:
        raise RuntimeError('__version__ not found in selfpatch_mm/version.py')
    return match.group(1)


def parse_requirements(fname: str) -> List[str]:
    """Return the requirement lines of a requirements file.

    Comments, blank lines and pip options are skipped; ``-r other.txt`` lines
    are followed relative to the file.
    """
    path = osp.join(HERE, fname)
    reqs: List[str] = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                reqs += parse_requirements(
                    osp.join(osp.dirname(fname), line[3:].strip()))
            elif not line.startswith('-'):
                reqs.append(line)
    return reqs


def readme() -> str:
    """Return README.md's text, or '' when it is missing."""
    path = osp.join(HERE, 'README.md')
    if not osp.isfile(path):
        return ''
    with open(path, encoding='utf-8') as f:
        return f.read()


def add_mim_extension() -> None:
    """Put the configs, the tools and the model index into
    ``selfpatch_mm/.mim``, where ``mim`` (openmim) looks for them, as
    mmpretrain's setup.py does.

    Editable installs (``pip install -e .``: setuptools' ``develop`` or
    ``editable_wheel``) get symbolic links to the originals; wheels and
    source distributions get copies. Other commands leave ``.mim`` alone.
    """
    if {'develop', 'editable_wheel'} & set(sys.argv):
        mode = 'symlink'
    elif {'sdist', 'bdist_wheel'} & set(sys.argv):
        mode = 'copy'
    else:
        return
    mim_path = osp.join(HERE, 'selfpatch_mm', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in ('tools', 'configs', 'model-index.yml'):
        src = osp.join(HERE, name)
        if not osp.exists(src):
            continue
        tar = osp.join(mim_path, name)
        if osp.isfile(tar) or osp.islink(tar):
            os.remove(tar)
        elif osp.isdir(tar):
            shutil.rmtree(tar)
        if mode == 'symlink':
            try:
                os.symlink(osp.relpath(src, mim_path), tar)
                continue
            except OSError:
                # e.g. Windows without the privilege: copy instead.
                warnings.warn(f'Cannot link {tar}; copying {src} instead.')
        if osp.isfile(src):
            shutil.copyfile(src, tar)
        else:
            shutil.copytree(src, tar, ignore=shutil.ignore_patterns(
                '__pycache__', '*.pyc'))


add_mim_extension()

setup(
    name='selfpatch_mm',
    version=get_version(),
    description='SelfPatch (CVPR 2022) for the OpenMMLab 2.x stack',
    long_description=readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['selfpatch_mm', 'selfpatch_mm.*']),
    include_package_data=True,
    python_requires='>=3.9',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'tests': parse_requirements('requirements/tests.txt'),
        'optional': parse_requirements('requirements/optional.txt'),
    },
    license='Apache License 2.0',
    zip_safe=False,
)
