# ImageNet-1k full fine-tuning of a SelfPatch ViT-S/16: mmpretrain's
# self-supervised ViT fine-tuning recipe, the MAE one (mmpretrain 1.2.0
# configs/mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py, inherited
# below as it is; mmpretrain ships that recipe for ViT-B and larger only, and
# none for ViT-S). Settings and their source:
# - from the MAE config: AdamW lr 2e-3 for 8 x 128 = 1024 images, betas
#   (0.9, 0.999), weight decay 0.05 (none on norms, biases, pos_embed);
#   layer-wise lr decay 0.65 (LearningRateDecayOptimWrapperConstructor);
#   5 warm-up epochs from 1e-4 x lr, cosine to 1e-6 over 95 epochs, 100 in
#   all, per iteration; Mixup (alpha 0.8) and CutMix (alpha 1.0) batch
#   augments; label smoothing 0.1; drop path 0.1; global average pooling of
#   the patch tokens with a fresh LayerNorm (out_type='avg_featmap',
#   final_norm=False) into a Linear head, TruncNormal(2e-5) init; seed 0.
# - from its dataset base (configs/_base_/datasets/imagenet_bs64_swin_224.py):
#   RandomResizedCrop(224, bicubic), flip, RandAugment (2 ops, magnitude 9,
#   std 0.5), RandomErasing 0.25; val Resize(256, bicubic) + CenterCrop(224).
# - changed here: the backbone is this package's SelfPatchViT (ViT-S/16,
#   deit-small: 384-d, 12 blocks, 6 heads, no [CLS] token), loaded from the
#   pretraining checkpoint's EMA teacher; the data is an ImageNet-layout
#   folder data_root/{train,val}/<class>/* (CustomDataset, as the
#   pretraining configs read it); checkpoints through SafeCheckpointHook.
#
#   python tools/train.py THIS_CONFIG --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/.../epoch_300.pth
# init_cfg.checkpoint_key='teacher' takes the EMA teacher ('student' the
# student) of a tools/train.py checkpoint or of the authors' checkpoint.pth,
# or a backbone-only file (extract_backbone.py): the backbone's own
# Pretrained loading reads any of these layouts.
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'

custom_imports = dict(
    imports=['selfpatch_mm.models', 'selfpatch_mm.engine'],
    allow_failed_imports=False)

data_root = 'data/imagenet'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.SelfPatchViT',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='avg_featmap',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/selfpatch_vit-small-p16_8xb128-coslr-300e_'
            'in1k/epoch_300.pth',
            checkpoint_key='teacher')),
    head=dict(in_channels=384))

dataset = dict(_delete_=True, type='mmpretrain.CustomDataset',
               data_root=data_root)
train_dataloader = dict(dataset=dict(
    dataset, data_prefix='train', pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(
    dataset, data_prefix='val', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader

default_hooks = dict(
    checkpoint=dict(type='mmpretrain.SafeCheckpointHook', interval=1,
                    max_keep_ckpts=3))
