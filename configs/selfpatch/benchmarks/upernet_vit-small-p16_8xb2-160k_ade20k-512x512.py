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
    '../../_base_/datasets/ade20k_checked-labels.py',
    'mmseg::_base_/default_runtime.py',
    '../../_base_/schedules/ade20k_adamw-poly_40k.py',
]

pretrained = ('work_dirs/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k/'
              'epoch_300.pth')
num_classes = 150
crop_size = (512, 512)
embed_dims = 384
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    # whole-image test: pad to a multiple of 32 (the ViT needs multiples
    # of its patch size); the padding is cut off the prediction
    data_preprocessor=dict(size=crop_size, test_cfg=dict(size_divisor=32)),
    backbone=dict(
        _delete_=True,
        type='SelfPatchDenseViT',
        arch='deit-small',
        img_size=crop_size[0],
        patch_size=16,
        out_indices=(2, 5, 8, 11),
        drop_path_rate=0.1,
        norm_cfg=norm_cfg,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
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
default_hooks = dict(checkpoint=dict(interval=16000))
# 8 GPUs x 2 images = 16 per iteration
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
