# Frozen linear probe on ADE20K (DINOv2's `linear` protocol): the
# pretrained SelfPatch ViT-S/16 is frozen (no gradient, eval mode, weights
# bit-identical after training) and its last block's patch tokens go through
# BatchNorm and ONE 1x1 convolution. This measures the features themselves;
# fine-tuning (the Semantic FPN / UperNet configs) would wash out the
# difference between pretraining methods. 8 GPUs x 2 images, 40k iterations,
# AdamW lr 1e-3, weight decay 1e-4, poly decay after a 1500-iteration warm-up,
# 512x512 crops, single-scale whole-image test. See docs/transfer_ade20k.md.
#
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# (the EMA teacher of a tools/train.py checkpoint is loaded). Several blocks,
# concatenated: model.backbone.out_indices="(8,9,10,11)"
#   model.decode_head.in_channels="[384,384,384,384]"
#   model.decode_head.in_index="[0,1,2,3]"
_base_ = [
    '../../_base_/datasets/ade20k_checked-labels.py',
    'mmseg::_base_/default_runtime.py',
    '../../_base_/schedules/ade20k_adamw-poly_40k.py',
]
# CheckSegLabels (dataset base), the frozen backbone (mmpretrain registry),
# the head (mmseg registry) and the checkpoint hook
custom_imports = dict(
    imports=[
        'selfpatch_mm.datasets.transforms.check_seg_labels',
        'selfpatch_mm.models', 'selfpatch_mm.models.seg_heads',
        'selfpatch_mm.engine'
    ],
    allow_failed_imports=False)

num_classes = 150
embed_dims = 384
crop_size = (512, 512)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=crop_size,
        # the ViT needs multiples of its patch size; the padding is cut off
        test_cfg=dict(size_divisor=16)),
    pretrained=None,
    backbone=dict(
        type='mmpretrain.FrozenSelfPatchViT',
        arch='deit-small',
        img_size=512,
        patch_size=16,
        out_indices=(11, ),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/selfpatch_vit-small-p16_8xb128-coslr-300e_'
            'in1k/epoch_300.pth')),
    decode_head=dict(
        type='LinearProbeHead',
        in_channels=[embed_dims],
        in_index=[0],
        with_bn=True,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        dropout_ratio=0.0,
        num_classes=num_classes,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# DINOv2's linear-probe optimiser; only the head has trainable parameters
optim_wrapper = dict(
    optimizer=dict(lr=1e-3, weight_decay=1e-4), paramwise_cfg=None)
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
default_hooks = dict(checkpoint=dict(type='mmpretrain.SafeCheckpointHook'))
