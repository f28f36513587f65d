"""Utilities of selfpatch_mm."""
from .setup_env import (allow_trusted_checkpoints, build_runner,
                        init_cpu_dist_if_needed, load_config,
                        load_trusted_local_checkpoint, set_cpu_ddp_wrapper)

__all__ = [
    'allow_trusted_checkpoints', 'build_runner', 'init_cpu_dist_if_needed',
    'load_config', 'load_trusted_local_checkpoint', 'set_cpu_ddp_wrapper'
]
