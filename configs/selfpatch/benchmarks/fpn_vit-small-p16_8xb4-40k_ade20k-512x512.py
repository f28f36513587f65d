# Semantic FPN on ADE20K from a SelfPatch ViT-S/16 (paper: DINO 38.3,
# SelfPatch 41.2 mIoU), the official recipe on mmseg 1.x: 8 GPUs x 4 images,
# 40k iterations, 512x512 crops. See docs/transfer_ade20k.md.
#
# Set the pretraining checkpoint (an mmengine checkpoint of tools/train.py;
# the EMA teacher's backbone is loaded) with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# SyncBN layers become BN by themselves in single-process runs (mmengine's
# Runner reverts them when not distributed).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
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
    neck=dict(in_channels=[embed_dims] * 4, out_channels=256, num_outs=4),
    decode_head=dict(
        channels=128,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg))

# 8 GPUs x 4 images = 32 per iteration, as in the official run
train_dataloader = dict(batch_size=4)
auto_scale_lr = dict(enable=False, base_batch_size=32)
