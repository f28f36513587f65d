"""A 2-process CPU pretraining run (torchrun + gloo) of the demo config, with
gradient accumulation (DDP skips the all-reduce on accumulating steps)."""
from pathlib import Path

import pytest
import torch
# conftest.py puts this folder on sys.path
from e2e_helpers import (dist_train_cmd, load_ckpt, make_demo_images,
                         run_cmd, subprocess_env, write_config)

NUM_IMAGES = 24  # 3 iterations per rank: a step of 2, then of 1
BATCH = 4  # per process


@pytest.mark.slow
@pytest.mark.skipif(
    torch.cuda.is_available(),
    reason='checks the CPU (gloo) path; tools/train.py uses NCCL on GPUs')
def test_two_process_cpu_run_agrees_on_centres(tmp_path: Path,
                                               hook_dir: Path) -> None:
    """Each rank trains on its own half of the images; the centres are
    all-reduced, so both ranks must end with the same (non-zero) centres,
    and DDP keeps the students, hence the EMA teachers, equal, also when
    gradients accumulate over 2 iterations without synchronising."""
    data = tmp_path / 'images'
    make_demo_images(str(data), num=NUM_IMAGES, size=64)
    dump = tmp_path / 'dump'
    dump.mkdir()
    cfg = write_config(
        tmp_path / 'demo_dist.py', {
            'train_dataloader.dataset.data_root': str(data),
            'train_dataloader.batch_size': BATCH,
            'train_dataloader.num_workers': 0,
            'train_cfg.max_epochs': 1,
            'optim_wrapper.accumulative_counts': 2,
        },
        dump_dir=dump)
    work_dir = tmp_path / 'work'
    cmd = dist_train_cmd(cfg, work_dir)
    run_cmd(
        cmd,
        cwd=tmp_path,
        env=subprocess_env(hook_dir, threads=1),
        timeout=300)

    ranks = [
        torch.load(dump / f'after_train_rank{r}.pth', weights_only=True)
        for r in (0, 1)
    ]
    iters = NUM_IMAGES // (2 * BATCH)
    for state in ranks:
        assert state['world_size'] == 2 and state['wrapped']
        assert state['iter'] == iters
    for key in ('center', 'patch_center'):
        assert ranks[0][key].abs().sum() > 0, key
        torch.testing.assert_close(ranks[0][key], ranks[1][key], msg=key)
    teacher0, teacher1 = ranks[0]['teacher'], ranks[1]['teacher']
    assert teacher0.keys() == teacher1.keys()
    for key in teacher0:
        torch.testing.assert_close(teacher0[key], teacher1[key], msg=key)
    # rank 0 wrote the checkpoint, with the same centres
    ckpt = load_ckpt(work_dir / 'epoch_1.pth')
    assert ckpt['meta']['iter'] == iters
    torch.testing.assert_close(ckpt['state_dict']['head.loss_module.center'],
                               ranks[0]['center'])
