"""Utilities of selfpatch_mm."""
from ..checkpoint import (CheckpointLoadError, UnsafeCheckpointError,
                          load_checkpoint_file)
from .registration import register_all_modules
from .setup_env import (build_runner, init_cpu_dist_if_needed, load_config,
                        set_cpu_ddp_wrapper)

__all__ = [
    'CheckpointLoadError', 'UnsafeCheckpointError', 'build_runner',
    'init_cpu_dist_if_needed', 'load_checkpoint_file', 'load_config',
    'register_all_modules', 'set_cpu_ddp_wrapper'
]
