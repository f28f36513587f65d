# Mask R-CNN + FPN on COCO with a SelfPatch ViT-S/16, 1x schedule: the
# paper's detection / instance segmentation transfer (Table 2 of
# https://arxiv.org/abs/2206.07990, official box/mask AP 42.1/38.5), on
# mmdet 3.x. Recipe of the official detection/configs/selfpatch config.
#
# Set the pretrained weights (a selfpatch_mm pretraining checkpoint, a
# converted official file or an extracted backbone; the teacher is used):
#   python tools/train.py THIS_CONFIG \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
# 8 GPUs x 1 image (lr 5e-5 is for 8 images per iteration; add
# --auto-scale-lr for another total batch size), with mixed precision:
#   bash tools/dist_train.sh THIS_CONFIG 8 --amp \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
# Without CUDA the backbone's SyncBN becomes BN by itself; to choose it
# explicitly: --cfg-options model.backbone.norm_cfg.type=BN (or LN2d).
# Data: data/coco/{annotations/instances_{train,val}2017.json,train2017,val2017}.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py'
]
# The backbone and the checkpoint hook live in mmpretrain's registries (as in
# mmdet's own configs with mmpretrain backbones): `mmpretrain.` types.
custom_imports = dict(
    imports=['selfpatch_mm.models', 'selfpatch_mm.engine'],
    allow_failed_imports=False)

pretrained = 'checkpoints/selfpatch_vit-small-p16_pretrain.pth'  # set me
embed_dims = 384
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.SelfPatchDenseViT',
        arch='deit-small',  # ViT-S: 384-d, 12 layers, 6 heads
        img_size=224,
        patch_size=16,
        out_indices=(3, 5, 7, 11),  # strides 4, 8, 16, 32
        drop_path_rate=0.05,
        norm_cfg=dict(type='SyncBN'),
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained,
            checkpoint_key='teacher')),
    neck=dict(in_channels=[embed_dims] * 4, out_channels=256),
    # The base's RoI extractors already use strides 4/8/16/32, which the
    # backbone gives (the official base config had 16 everywhere).
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=[4, 8, 16, 32]),
        mask_roi_extractor=dict(featmap_strides=[4, 8, 16, 32])))

# DETR-style multi-scale training (mmdet's detr config), with masks.
_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333),
           (640, 1333), (672, 1333), (704, 1333), (736, 1333), (768, 1333),
           (800, 1333)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=_scales, keep_ratio=True)],
            [
                dict(
                    type='RandomChoiceResize',
                    scales=[(400, 1333), (500, 1333), (600, 1333)],
                    keep_ratio=True),
                dict(
                    type='RandomCrop',
                    crop_type='absolute_range',
                    crop_size=(384, 600),
                    allow_negative_crop=True),
                dict(
                    type='RandomChoiceResize',
                    scales=_scales,
                    keep_ratio=True)
            ]
        ]),
    dict(type='PackDetInputs')
]
# 8 GPUs x 1 image, as the official run.
train_dataloader = dict(batch_size=1, dataset=dict(pipeline=train_pipeline))
# Testing at 1333x800 with bbox + segm CocoMetric comes from the base.

optim_wrapper = dict(
    # plain OptimWrapper so CPU runs work; `--amp` switches to AMP on CUDA
    type='OptimWrapper',
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=5e-5,
        betas=(0.9, 0.999),
        weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,  # every LayerNorm/BN
        custom_keys={
            'pos_embed': dict(decay_mult=0.0),
            'cls_token': dict(decay_mult=0.0)
        }))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=12,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1)
]
train_cfg = dict(max_epochs=12)
auto_scale_lr = dict(enable=False, base_batch_size=8)
# atomic checkpoints, resume from the newest readable one, RNG states saved
default_hooks = dict(checkpoint=dict(type='mmpretrain.SafeCheckpointHook'))
