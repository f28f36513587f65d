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
    # DefaultSampler's order; it can start an epoch part-way on resume, and
    # draws each sample's augmentation from (seed, epoch, index), so a
    # resumed epoch repeats the uninterrupted one also with worker processes
    sampler=dict(type='ResumableSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    # numpy-driven crops change every epoch also without persistent
    # workers (mmengine's default re-seeds them identically each epoch)
    worker_init_fn=dict(type='torch_seeded_worker_init'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        with_label=False,
        pipeline=train_pipeline))

# Frozen features of whole images, with the official k-NN evaluation's
# preprocessing (PIL bicubic resize of the short side to 256, centre crop
# 224). mmpretrain's FeatureExtractor / get_model read
# `test_dataloader.dataset.pipeline`; `tools/test.py CONFIG CKPT` writes the
# teacher's image-level feature of every image (SelfPatch: the aggregation
# module's [CLS] token) to `test_evaluator.out_file_path`.
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root='data/imagenet/val',
        with_label=False,
        pipeline=test_pipeline))
test_cfg = dict(type='TestLoop')
test_evaluator = dict(
    type='mmengine.DumpResults', out_file_path='work_dirs/features.pkl')
