# DINO multi-crop (official DataAugmentationDINO) on any folder of images.
# 2 global crops at 224 (scale 0.25-1) and 8 local crops at 96 (0.05-0.25);
# flip, colour jitter, grayscale, blur and solarize are DINOMultiCrop's
# defaults (DINO's). Set any of its arguments here or with --cfg-options
# train_dataloader.dataset.pipeline.1.<argument>=<value>; with
# ...pipeline.1.photometric=device the jitter, grayscale, blur and solarize
# run batched in the model's MultiCropDataPreprocessor (on the GPU).
dataset_type = 'CustomDataset'
data_root = 'data/imagenet/train'

data_preprocessor = dict(
    type='MultiCropDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

multicrop = dict(
    type='DINOMultiCrop',
    num_global_crops=2,
    global_crop_size=224,
    global_crops_scale=(0.25, 1.0),
    num_local_crops=8,
    local_crop_size=96,
    local_crops_scale=(0.05, 0.25))

train_pipeline = [
    dict(type='RobustLoadImageFromFile', skip_corrupt=True),
    multicrop,
    # `multicrop_photometric` carries the deferred photometric settings to
    # the data preprocessor when photometric='device'
    dict(
        type='PackInputs',
        meta_keys=('sample_idx', 'img_path', 'ori_shape', 'img_shape',
                   'multicrop_photometric')),
]

# Loader defaults for one GPU process; the paper config documents them.
train_dataloader = dict(
    batch_size=128,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    prefetch_factor=2,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    # numpy-driven crops change every epoch also without persistent
    # workers (mmengine's default re-seeds them identically each epoch)
    worker_init_fn=dict(type='torch_seeded_worker_init'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        with_label=False,
        pipeline=train_pipeline))
