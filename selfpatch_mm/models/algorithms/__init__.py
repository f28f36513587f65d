# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .dino_self_supervisor import DINOSelfSupervisor
from .ema_teacher_self_supervisor import EMATeacherSelfSupervisor
from .selfpatch import SelfPatch

__all__ = ['DINOSelfSupervisor', 'EMATeacherSelfSupervisor', 'SelfPatch']
