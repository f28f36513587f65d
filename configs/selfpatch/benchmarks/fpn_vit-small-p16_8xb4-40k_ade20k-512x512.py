# Semantic FPN on ADE20K from a SelfPatch ViT-S/16 (paper: DINO 38.3,
# SelfPatch 41.2 mIoU), the official recipe on mmseg 1.x: 8 GPUs x 4 images,
# 40k iterations, 512x512 crops. See docs/transfer_ade20k.md ("Fidelity").
#
# As the official segmentation backbone (alinlab/SelfPatch
# segmentation/backbones/vit_SelfPatch.py, forward), the ViT gives the
# tokens of blocks 2, 5, 8 and 11 to the FPN as four stride-16 maps, with no
# resampling (out_mode='patch_stride'); FPNHead's scale heads then upsample
# them and resize the sum back to stride 16, as officially. The variant with
# the detection backbone's pyramid (strides 4-32 through deconvolutions and
# pooling) is fpn_vit-small-p16-resampled_8xb4-40k_ade20k-512x512.py.
#
# Set the pretraining checkpoint (an mmengine checkpoint of tools/train.py;
# the EMA teacher's backbone is loaded) with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# SyncBN layers become BN by themselves in single-process runs (mmengine's
# Runner reverts them when not distributed).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
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
    backbone={{_base_.selfpatch_backbone_patch_stride}},
    neck=dict(in_channels=[embed_dims] * 4, out_channels=256, num_outs=4),
    decode_head=dict(
        channels=128,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg))

# 8 GPUs x 4 images = 32 per iteration, as in the official run
train_dataloader = dict(batch_size=4)
auto_scale_lr = dict(enable=False, base_batch_size=32)
# atomic checkpoints, resume from the newest readable one, RNG states saved
default_hooks = dict(checkpoint=dict(type='mmpretrain.SafeCheckpointHook'))
