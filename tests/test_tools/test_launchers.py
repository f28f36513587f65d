"""The launcher scripts: dist_*.sh and slurm_*.sh are thin wrappers of
dist_run.sh / slurm_run.sh and pass the tools what mmpretrain's do."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / 'tools'

pytestmark = pytest.mark.skipif(shutil.which('bash') is None,
                                reason='needs bash')


def _launch(tmp_path: Path, script: str, *args: str) -> str:
    """Run a launcher with stand-in ``python`` and ``srun`` that print
    their arguments."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    for name in ('python', 'srun'):
        stub = bin_dir / name
        stub.write_text(f'#!/usr/bin/env bash\necho "{name} $*"\n')
        stub.chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    out = subprocess.run(['bash', str(TOOLS / script), *args], env=env,
                         capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1]


def test_dist_launchers(tmp_path):
    run = ('python -m torch.distributed.run --nnodes=1 --node_rank=0 '
           '--master_addr=127.0.0.1 --nproc_per_node=2 --master_port=29500 ')
    assert _launch(tmp_path, 'dist_train.sh', 'c.py', '2', '--amp') == (
        f'{run}{TOOLS}/train.py c.py --launcher pytorch --amp')
    assert _launch(tmp_path, 'dist_test.sh', 'c.py', 'k.pth', '2', '--out',
                   'p.pkl') == (f'{run}{TOOLS}/test.py c.py k.pth --launcher '
                                'pytorch --out p.pkl')


def test_slurm_launchers(tmp_path):
    run = ('srun -p part --job-name=job --gres=gpu:8 --ntasks=8 '
           '--ntasks-per-node=8 --cpus-per-task=5 --kill-on-bad-exit=1 '
           'python -u ')
    assert _launch(tmp_path, 'slurm_train.sh', 'part', 'job', 'c.py', 'wd',
                   '--amp') == (f'{run}{TOOLS}/train.py c.py --work-dir=wd '
                                '--launcher slurm --amp')
    assert _launch(tmp_path, 'slurm_test.sh', 'part', 'job', 'c.py',
                   'k.pth') == (f'{run}{TOOLS}/test.py c.py k.pth --launcher '
                                'slurm')
