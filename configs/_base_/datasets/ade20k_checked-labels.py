# mmseg's ADE20K (150 classes, reduce_zero_label) with CheckSegLabels after
# LoadAnnotations: a label value the decode head cannot take fails with the
# file name instead of an index error inside the loss.
_base_ = 'mmseg::_base_/datasets/ade20k.py'

# What the SelfPatch ADE20K configs build from this project: CheckSegLabels
# (mmseg's TRANSFORMS; only segmentation configs import its module), the
# backbones ('mmpretrain.SelfPatchDenseViT', ...) and the checkpoint hook.
# Bases may not share keys, so this base holds the list for all of them.
custom_imports = dict(
    imports=[
        'selfpatch_mm.datasets.transforms.check_seg_labels',
        'selfpatch_mm.models', 'selfpatch_mm.engine'
    ],
    allow_failed_imports=False)

num_classes = 150
crop_size = (512, 512)
check_labels = dict(type='CheckSegLabels', num_classes=num_classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    check_labels,
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    # ground truth stays at full size: loaded after Resize
    dict(type='LoadAnnotations', reduce_zero_label=True),
    check_labels,
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
