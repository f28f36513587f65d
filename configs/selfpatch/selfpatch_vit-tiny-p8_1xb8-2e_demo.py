# Demo: a tiny SelfPatch ViT on the images in demo/images, a few minutes on
# a laptop CPU. Writes work_dirs/<this name>/epoch_2.pth.
_base_ = './selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py'

embed_dims = 96
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=embed_dims,
            num_layers=4,
            num_heads=3,
            feedforward_channels=embed_dims * 4),
        img_size=64,
        patch_size=8),
    neck=dict(in_channels=embed_dims, num_heads=3),
    head=dict(
        in_channels=embed_dims,
        out_channels=1024,
        hidden_channels=256,
        bottleneck_channels=64,
        loss=dict(out_channels=1024)),
    patch_head=dict(
        in_channels=embed_dims,
        out_channels=256,
        hidden_channels=256,
        bottleneck_channels=64,
        loss=dict(out_channels=256)))

# The paper's multi-crop (DINOMultiCrop) with 2 global crops at 64 pixels
# (8x8 patches) and 4 local crops at 32 pixels (4x4 patches).
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    # off, so that --cfg-options train_dataloader.num_workers=0 works (torch
    # refuses persistent workers and prefetching without worker processes)
    persistent_workers=False,
    pin_memory=False,
    prefetch_factor=None,
    dataset=dict(
        data_root='demo/images',
        pipeline=[
            _base_.train_pipeline[0],
            dict(
                _base_.multicrop,
                global_crop_size=64,
                local_crop_size=32,
                num_local_crops=4),
            _base_.train_pipeline[2],
        ]))

train_cfg = dict(max_epochs=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=1, eta_min=1e-6, by_epoch=True,
         begin=1, end=2, convert_to_iter_based=True),
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
         eta_min_ratio=10.0, T_max=2, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=256, enable=False)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=1, max_keep_ckpts=2))
