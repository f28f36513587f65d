"""selfpatch_mm.apis.load_config: the overrides every tool shares."""
from pathlib import Path

from selfpatch_mm.apis import load_config

PAPER_CFG = str(Path(__file__).resolve().parents[2] / 'configs' /
                'selfpatch' /
                'selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py')


def test_num_workers_0_drops_worker_only_loader_options():
    cfg = load_config(PAPER_CFG, {'train_dataloader.num_workers': 0})
    assert cfg.train_dataloader.persistent_workers is False
    assert 'prefetch_factor' not in cfg.train_dataloader
    # With workers the paper's loader settings stay.
    cfg = load_config(PAPER_CFG)
    assert cfg.train_dataloader.num_workers == 10
    assert cfg.train_dataloader.persistent_workers is True
    assert cfg.train_dataloader.prefetch_factor == 2


def test_work_dir_defaults_to_config_name():
    cfg = load_config(PAPER_CFG)
    assert cfg.work_dir == \
        './work_dirs/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k'
    assert load_config(PAPER_CFG, work_dir='/tmp/x').work_dir == '/tmp/x'
