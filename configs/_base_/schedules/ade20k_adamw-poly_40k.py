# mmseg's 40k-iteration schedule with the optimiser of the SelfPatch ADE20K
# transfer (official Semantic FPN recipe): AdamW with weight decay 0.01 on
# everything but the position embedding (and a class token); linear warm-up
# from 1e-6 of the lr over 1500 iterations, then poly decay (power 1) to 0.
# The official config also lists `norm: decay_mult=0`, but its ViT names its
# LayerNorms ln1/ln2 and mmcv's ConvModule its BatchNorms bn, so that key
# matched no parameter and the norms were decayed; we do what it did
# (docs/transfer_ade20k.md, "Fidelity"). `paramwise_cfg.norm_decay_mult=0.0`
# gives what its comment meant.
_base_ = 'mmseg::_base_/schedules/schedule_40k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
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
