# ImageNet-1k linear evaluation of a SelfPatch ViT-S/16: the frozen protocol
# of DINO's eval_linear.py (facebookresearch/dino, commit 7c446df), which
# SelfPatch's repository (alinlab/SelfPatch, commit 81aef14) does not ship.
# Every setting and its source (eval_linear.py unless named):
# - features: the frozen backbone in eval mode under no_grad (`model.eval()`,
#   `with torch.no_grad()`), the last n_last_blocks=4 blocks (default 4,
#   "n=4 when evaluating ViT-Small"). DINO concatenates their [CLS] tokens;
#   the SelfPatch backbone has none, so MultiBlockAvgPool concatenates each
#   block's MEAN PATCH TOKEN (DINO's --avgpool_patchtokens feature, taken at
#   each of the 4 blocks): 4 x 384 = 1536 features, DINO's width. No norm on
#   them: SelfPatch's get_intermediate_layers returns the tokens as they are
#   (DINO's applies its final norm, which the SelfPatch ViT does not have).
# - classifier: one Linear(1536, 1000), weight N(0, 0.01), bias 0
#   (LinearClassifier); cross-entropy.
# - optimizer: SGD, momentum 0.9, weight decay 0, lr 0.001 x batch / 256
#   (--lr 0.001, the linear scaling rule) = 0.004 at 8 x 128 = 1024 images
#   (--batch_size_per_gpu 128, 8 GPUs in the README's command).
# - schedule: 100 epochs (--epochs 100), CosineAnnealingLR(T_max=epochs,
#   eta_min=0) stepped once per epoch; validation every epoch (--val_freq 1),
#   the best top-1 reported ("Max accuracy so far", save_best here).
# - train augmentation: RandomResizedCrop(224) (torchvision defaults: scale
#   0.08-1, ratio 3/4-4/3, bilinear) and RandomHorizontalFlip; PIL decoding.
# - val: Resize(256, bicubic) of the short side, CenterCrop(224).
# - data: an ImageNet-layout folder, data_root/{train,val}/<class>/*.
#
#   python tools/train.py THIS_CONFIG --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/.../epoch_300.pth
# The EMA teacher of a tools/train.py checkpoint is loaded (the official
# --checkpoint_key teacher); backbone-only files and the authors' files load
# too (SelfPatchDenseViT's loader). ViT-B (DINO: n=1 with avgpool):
# model.backbone.out_indices="(11,)" model.head.in_channels=768 plus arch.
_base_ = ['../../_base_/default_runtime.py']

data_root = 'data/imagenet'
embed_dims = 384
out_indices = (8, 9, 10, 11)  # the last 4 of 12 blocks
model = dict(
    type='mmpretrain.ImageClassifier',
    backbone=dict(
        type='mmpretrain.FrozenSelfPatchViT',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        out_indices=out_indices,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/selfpatch_vit-small-p16_8xb128-coslr-300e_'
            'in1k/epoch_300.pth')),
    neck=dict(type='mmpretrain.MultiBlockAvgPool'),
    head=dict(
        type='mmpretrain.LinearClsHead',
        num_classes=1000,
        in_channels=embed_dims * len(out_indices),
        loss=dict(type='mmpretrain.CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
        init_cfg=dict(type='Normal', layer='Linear', std=0.01, bias=0.0)))

data_preprocessor = dict(
    type='mmpretrain.ClsDataPreprocessor',
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='mmpretrain.LoadImageFromFile', imdecode_backend='pillow'),
    dict(
        type='mmpretrain.RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.08, 1.0),
        aspect_ratio_range=(3. / 4., 4. / 3.),
        backend='pillow',
        interpolation='bilinear'),
    dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.PackInputs'),
]
test_pipeline = [
    dict(type='mmpretrain.LoadImageFromFile', imdecode_backend='pillow'),
    dict(
        type='mmpretrain.ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='mmpretrain.CenterCrop', crop_size=224),
    dict(type='mmpretrain.PackInputs'),
]
loader = dict(num_workers=10, persistent_workers=True, pin_memory=True)
dataset = dict(type='mmpretrain.CustomDataset', data_root=data_root)
train_dataloader = dict(
    loader,
    batch_size=128,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(dataset, data_prefix='train', pipeline=train_pipeline))
val_dataloader = dict(
    loader,
    batch_size=128,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, data_prefix='val', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.001 * 1024 / 256, momentum=0.9,
                   weight_decay=0.0))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=100, eta_min=0.0, by_epoch=True,
         begin=0, end=100)
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr above is for 1024 images; --auto-scale-lr rescales it linearly
auto_scale_lr = dict(base_batch_size=1024)

default_hooks = dict(
    logger=dict(interval=100),
    # DINO rewrites its checkpoint every epoch and reports the best top-1
    checkpoint=dict(interval=1, max_keep_ckpts=1, save_latest=False,
                    save_best='accuracy/top1', rule='greater'))
