"""The launcher scripts: dist_*.sh and slurm_*.sh are thin wrappers of
dist_run.sh / slurm_run.sh and pass the tools what mmpretrain's do."""
import os
import shutil
from pathlib import Path

import pytest
from helpers import run_tool

TOOLS = Path(__file__).resolve().parents[2] / 'tools'

pytestmark = pytest.mark.skipif(shutil.which('bash') is None,
                                reason='needs bash')


def _stubs(tmp_path: Path, srun_exit: int = 0) -> dict:
    """An environment whose ``python``, ``srun`` and ``scontrol`` print
    their arguments (and ``SELFPATCH_AUTO_RESUME``); ``srun`` exits with
    ``srun_exit``."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    for name, code in (('python', 0), ('srun', srun_exit), ('scontrol', 0)):
        stub = bin_dir / name
        stub.write_text(f'#!/usr/bin/env bash\necho "{name} $*"\n'
                        'echo "auto-resume=${SELFPATCH_AUTO_RESUME:-}" >&2\n'
                        f'exit {code}\n')
        stub.chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    for key in ('SLURM_JOB_ID', 'SELFPATCH_AUTO_RESUME', 'SRUN_ARGS',
                'SIGNAL_LEAD', 'REQUEUE'):
        env.pop(key, None)
    return env


def _launch(tmp_path: Path, script: str, *args: str) -> str:
    """Run a launcher with the stand-ins of :func:`_stubs`; its last line
    of output."""
    out = run_tool(TOOLS / script, *args, env=_stubs(tmp_path),
                   merge_stderr=False).stdout
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
           '--ntasks-per-node=8 --cpus-per-task=5 --kill-on-bad-exit=1 ')
    assert _launch(tmp_path, 'slurm_train.sh', 'part', 'job', 'c.py', 'wd',
                   '--amp') == (f'{run}--signal=USR1@120 python -u '
                                f'{TOOLS}/train.py c.py --work-dir=wd '
                                '--launcher slurm --amp')
    run += 'python -u '

    assert _launch(tmp_path, 'slurm_test.sh', 'part', 'job', 'c.py',
                   'k.pth') == (f'{run}{TOOLS}/test.py c.py k.pth --launcher '
                                'slurm')


def _slurm_train(tmp_path: Path, srun_exit: int, **env: str):
    return run_tool(TOOLS / 'slurm_train.sh', 'part', 'job', 'c.py', 'wd',
                    env=dict(_stubs(tmp_path, srun_exit), **env),
                    expect_ok=None, merge_stderr=False)


def test_slurm_train_requeues_a_preempted_sbatch_job(tmp_path):
    """Exit 75 (PreemptionHook) in an sbatch job: `scontrol requeue` of
    that job, and the exit status is kept; the training processes see
    SELFPATCH_AUTO_RESUME=1 (a requeued job resumes by itself)."""
    proc = _slurm_train(tmp_path, 75, SLURM_JOB_ID='4242',
                        SIGNAL_LEAD='300', SRUN_ARGS='--qos=low')
    assert proc.returncode == 75
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith('srun ') and \
        '--signal=USR1@300 --qos=low python -u' in lines[0]
    assert lines[-1] == 'scontrol requeue 4242'
    assert 'auto-resume=1' in proc.stderr


@pytest.mark.parametrize('code,env', [
    (0, dict(SLURM_JOB_ID='4242')),  # finished: nothing to requeue
    (1, dict(SLURM_JOB_ID='4242')),  # a crash is not a preemption
    (75, dict()),  # srun from a login node: no job to requeue
    (75, dict(SLURM_JOB_ID='4242', REQUEUE='0')),
])
def test_slurm_train_requeues_only_preempted_jobs(tmp_path, code, env):
    proc = _slurm_train(tmp_path, code, **env)
    assert proc.returncode == code
    assert 'scontrol' not in proc.stdout


def test_slurm_train_signal_lead_zero_leaves_signal_out(tmp_path):
    proc = _slurm_train(tmp_path, 0, SIGNAL_LEAD='0')
    assert proc.returncode == 0 and '--signal' not in proc.stdout
