# Official optimisation of main_selfpatch.py.
max_epochs = 300
warmup_epochs = 10

optim_wrapper = dict(
    # Mixed precision when CUDA is present, fp32 otherwise.
    type='AutoAmpSelfPatchOptimWrapper',
    # 0.0005 per 256 images; auto_scale_lr applies the linear scaling rule.
    optimizer=dict(type='AdamW', lr=0.0005, betas=(0.9, 0.999),
                   weight_decay=0.04),
    # Official clip_gradients: each parameter's gradient on its own.
    clip_grad=dict(type='per_param', max_norm=3.0),
    # The frozen EMA teacher is left out of the walk (mmengine would warn
    # once per teacher parameter that it skips it)
    constructor='StudentOptimWrapperConstructor',
    # No weight decay on biases and other 1-D parameters.
    paramwise_cfg=dict(
        bias_decay_mult=0., norm_decay_mult=0., flat_decay_mult=0.))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=1e-6,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
    # Weight decay 0.04 -> 0.4 (ratio 10); groups at 0 stay at 0.
    dict(
        type='CosineAnnealingParamScheduler',
        param_name='weight_decay',
        eta_min_ratio=10.0,
        T_max=max_epochs,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True),
]

# mmengine's epoch loop that resumes a mid-epoch checkpoint at its next
# batch (PreemptionHook writes such files), instead of replaying the epoch
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=256, enable=True)

custom_hooks = [
    dict(type='TeacherEMAHook', momentum=0.996, end_momentum=1.0),
    dict(
        type='TeacherTempWarmupHook',
        warmup_teacher_temp=0.04,
        teacher_temp=0.04,
        warmup_epochs=0),
    dict(type='FreezeLastLayerHook', num_epochs=1),
    # Warns when a head stays near uniform or single-prototype collapse
    # (thresholds measured in docs/health.md); stop=True saves and exits.
    dict(type='CollapseMonitorHook'),
]
