"""A diverging run stops loudly and keeps every good checkpoint.

The official loop exits with ``Loss is nan, stopping training``; a run that
went on would write NaN checkpoints, point ``last_checkpoint`` at them and
let ``max_keep_ckpts`` delete the good ones.
"""
from pathlib import Path

import pytest
import torch
# conftest.py puts this folder on sys.path
from e2e_helpers import load_ckpt, run_cmd, train_cmd, write_demo_run


def _all_finite(state: dict) -> bool:
    return all(
        torch.isfinite(v).all() for v in state.values()
        if torch.is_tensor(v) and v.is_floating_point())


@pytest.mark.slow
def test_lr_blow_up_stops_run_and_keeps_good_checkpoints(
        tmp_path: Path) -> None:
    cfg = write_demo_run(
        tmp_path, 'diverge.py', num_images=16, options={
            'train_cfg.max_epochs': 3,
            # x1e12 from the third epoch: AdamW's decoupled weight decay
            # alone then multiplies the weights by -4e6 per step.
            'param_scheduler': [
                dict(type='MultiStepLR', by_epoch=True, milestones=[2],
                     gamma=1e12)
            ],
            'default_hooks.checkpoint.interval': 1,
            'default_hooks.checkpoint.max_keep_ckpts': 1,
        })
    work = tmp_path / 'work'
    proc = run_cmd(train_cmd(cfg, work), cwd=tmp_path, expect_ok=False)
    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    assert 'NonFiniteLossError: Non-finite loss at iteration' in out, \
        out[-3000:]
    assert '(epoch 3)' in out and '--resume' in out
    # Rotation kept the last good file; nothing of epoch 3 was written.
    ckpts = sorted(p.name for p in work.glob('*.pth'))
    assert ckpts == ['epoch_2.pth'], ckpts
    last = (work / 'last_checkpoint').read_text().strip()
    last = Path(last) if Path(last).is_absolute() else work / last
    assert last.name == 'epoch_2.pth'
    ckpt = load_ckpt(last)
    assert ckpt['meta']['epoch'] == 2
    assert _all_finite(ckpt['state_dict'])
