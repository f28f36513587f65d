# DINO multi-crop (official DataAugmentationDINO) on any folder of images.
# 2 global crops at 224 (scale 0.25-1) and 8 local crops at 96 (0.05-0.25).
dataset_type = 'CustomDataset'
data_root = 'data/imagenet/train'
global_crop_size = 224
local_crop_size = 96
global_crops_scale = (0.25, 1.0)
local_crops_scale = (0.05, 0.25)
num_local_crops = 8

data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)


# flip, colour jitter and grayscale, shared by every view
flip_and_color_jitter = [
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomApply',
        transforms=[
            dict(
                type='DINOColorJitter',
                brightness=0.4,
                contrast=0.4,
                saturation=0.2,
                hue=0.1)
        ],
        prob=0.8),
    dict(
        type='RandomGrayscale',
        prob=0.2,
        keep_channels=True,
        channel_weights=(0.114, 0.587, 0.2989)),
]
# magnitude_std='inf' draws a new radius in [0.1, 2.0] on every call.
blur = dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
            magnitude_std='inf')
global_crop = dict(
    type='RandomResizedCrop',
    scale=global_crop_size,
    crop_ratio_range=global_crops_scale,
    backend='pillow',
    interpolation='bicubic')
local_crop = dict(global_crop, scale=local_crop_size,
                  crop_ratio_range=local_crops_scale)
global_view1 = [global_crop, *flip_and_color_jitter, dict(blur, prob=1.0)]
global_view2 = [
    global_crop, *flip_and_color_jitter,
    dict(blur, prob=0.1),
    dict(type='Solarize', thr=128, prob=0.2)
]
local_view = [local_crop, *flip_and_color_jitter, dict(blur, prob=0.5)]

train_pipeline = [
    dict(type='RobustLoadImageFromFile', skip_corrupt=True),
    dict(
        type='MultiView',
        num_views=[1, 1, num_local_crops],
        transforms=[global_view1, global_view2, local_view]),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        with_label=False,
        pipeline=train_pipeline))
