# mmseg's 40k-iteration schedule with the optimiser of the SelfPatch ADE20K
# transfer (official Semantic FPN recipe): AdamW, no weight decay on position
# embeddings, class token and all normalisation layers; linear warm-up from
# 1e-6 of the lr over 1500 iterations, then poly decay (power 1) to 0.
_base_ = 'mmseg::_base_/schedules/schedule_40k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys=dict(
            pos_embed=dict(decay_mult=0.0), cls_token=dict(decay_mult=0.0))))
warmup_iters = 1500
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    # a longer schedule changes `end` (and train_cfg.max_iters)
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        by_epoch=False,
        begin=warmup_iters,
        end=40000),
]
