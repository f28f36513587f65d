# UperNet (+ auxiliary FCN head) on ADE20K from a SelfPatch ViT-S/16 (paper:
# DINO 42.3, SelfPatch 43.2 mIoU) with mmseg's usual ViT recipe: 8 GPUs x 2
# images, 160k iterations, 512x512 crops. See docs/transfer_ade20k.md.
#
# Set the pretraining checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# The backbone already gives strides 4/8/16/32, so upernet_r50's layout (no
# extra neck) fits; SyncBN becomes BN by itself in single-process runs.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    '../../_base_/models/selfpatch-dense-vit-small-p16_ade20k.py',
    '../../_base_/datasets/ade20k_checked-labels.py',
    'mmseg::_base_/default_runtime.py',
    '../../_base_/schedules/ade20k_adamw-poly_40k.py',
]

num_classes = 150
embed_dims = 384
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor={{_base_.selfpatch_data_preprocessor}},
    backbone={{_base_.selfpatch_backbone}},
    decode_head=dict(
        in_channels=[embed_dims] * 4,
        channels=512,
        num_classes=num_classes,
        norm_cfg=norm_cfg),
    # on the stride-16 map, as mmseg's ViT UperNets do
    auxiliary_head=dict(
        in_channels=embed_dims,
        in_index=2,
        num_classes=num_classes,
        norm_cfg=norm_cfg))

# the 40k schedule's AdamW and warm-up, stretched to mmseg's 160k schedule
max_iters = 160000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500,
         end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=16000)
# atomic checkpoints, resume from the newest readable one, RNG states saved
default_hooks = dict(
    checkpoint=dict(type='mmpretrain.SafeCheckpointHook', interval=16000))
# 8 GPUs x 2 images = 16 per iteration
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
