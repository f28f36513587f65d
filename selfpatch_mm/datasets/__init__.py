# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .samplers import *  # noqa: F401,F403
from .torch_seeded_worker_init import torch_seeded_worker_init  # noqa: F401
from .transforms import *  # noqa: F401,F403
