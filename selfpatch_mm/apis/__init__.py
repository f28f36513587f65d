# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""The assembly layer above models, datasets, engine and evaluation: what
the tools share to turn a config and a command line into a Runner.

* :mod:`.setup_env`: config loading and :func:`build_runner` (safe
  checkpoint loading, CPU process groups, the distributed timeout);
* :mod:`.cli`: the command-line arguments the tools share;
* :mod:`.dist_guard`: the distributed timeout and the stop on a lost peer;
* :mod:`.config_checks`: checks of a SelfPatch config before it trains;
* :mod:`.registration`: :func:`register_all_modules`.

Nothing below this layer imports it.
"""
from .cli import (add_pretrained_args, add_runner_args, add_unsafe_pickle_arg,
                  parse_runner_args)
from .registration import register_all_modules
from .setup_env import (build_runner, init_cpu_dist_if_needed, load_config,
                        set_cpu_ddp_wrapper)

__all__ = [
    'add_pretrained_args', 'add_runner_args', 'add_unsafe_pickle_arg',
    'build_runner', 'init_cpu_dist_if_needed', 'load_config',
    'parse_runner_args', 'register_all_modules', 'set_cpu_ddp_wrapper'
]
