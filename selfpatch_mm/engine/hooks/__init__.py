# Copyright (c) selfpatch_mm contributors. All rights reserved.
from .collapse_monitor_hook import CollapseMonitorHook
from .compile_hook import CompileHook
from .freeze_last_layer_hook import FreezeLastLayerHook
from .preemption_hook import (PREEMPTED_EXIT_CODE, PreemptionHook,
                              TrainingPreempted)
from .safe_checkpoint_hook import SafeCheckpointHook
from .teacher_ema_hook import TeacherEMAHook
from .teacher_temp_warmup_hook import TeacherTempWarmupHook

__all__ = [
    'TeacherEMAHook', 'TeacherTempWarmupHook', 'FreezeLastLayerHook',
    'SafeCheckpointHook', 'CollapseMonitorHook', 'PreemptionHook',
    'TrainingPreempted', 'PREEMPTED_EXIT_CODE', 'CompileHook'
]
