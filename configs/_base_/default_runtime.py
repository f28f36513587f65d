# Runtime shared by the pretraining configs (mmpretrain scope).
default_scope = 'mmpretrain'
# registers this project's models, transforms, hooks and optimizer wrappers
custom_imports = dict(
    imports=['selfpatch_mm.models', 'selfpatch_mm.datasets',
             'selfpatch_mm.engine'],
    allow_failed_imports=False)

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # atomic files, resume from the newest readable one, RNG states saved;
    # epoch_N.pth every 10 epochs (the last 3 kept) and latest.pth at the
    # end of every other epoch (the official code rewrites checkpoint.pth
    # every epoch)
    checkpoint=dict(
        type='SafeCheckpointHook',
        interval=10,
        max_keep_ckpts=3,
        save_latest=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # SIGTERM/SIGUSR1 (Slurm's preemption and --signal): every rank stops at
    # the next iteration, writes latest.pth there and exits with code 75;
    # save_every_minutes=N also writes it every N minutes inside an epoch
    preemption=dict(
        type='PreemptionHook',
        signals=['SIGTERM', 'SIGUSR1'],
        save_every_minutes=None),
)

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # seconds a collective waits for the other ranks before the run stops
    # (a frozen or dead rank); SELFPATCH_DIST_TIMEOUT overrides it
    dist_cfg=dict(backend='nccl', timeout=1800),
)

# Curves go to <work_dir>/<timestamp>/vis_data/scalars.json (draw them with
# tools/analysis_tools/plot_curves.py). More backends, added to this list:
# TensorBoard (pip install tensorboard): dict(type='TensorboardVisBackend')
# W&B (pip install wandb; wandb login): dict(type='WandbVisBackend')
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
log_processor = dict(window_size=10)
load_from = None
resume = False
# The official code seeds every rank with the same seed (0).
randomness = dict(seed=0, diff_rank_seed=False)
