# Standard DINO (Caron et al., ICCV 2021), ViT-S/16, 8 GPUs x 64 images,
# 100 epochs on ImageNet-1k: the defaults of facebookresearch/dino
# main_dino.py (its README's ViT-S/16 run: 69.3% k-NN, 74.0% linear).
# Built from the same DINO parts as SelfPatch (DINOHead, DINOLoss,
# TeacherEMAHook, TeacherTempWarmupHook, FreezeLastLayerHook, the optimiser
# wrapper and DINOMultiCrop) but with a [CLS] token, no aggregation module
# and no patch loss (DINOSelfSupervisor). Against the SelfPatch configs:
# - global crops scale (0.4, 1) and local crops scale (0.05, 0.4) (SelfPatch:
#   0.25-1 and 0.05-0.25); 8 local crops of 96 px as both;
# - the teacher sees the 2 global crops only;
# - 100 epochs, 64 images per GPU (lr 0.0005 x 512 / 256 by auto_scale_lr);
#   10 warm-up epochs, weight decay 0.04 -> 0.4, momentum 0.996 -> 1,
#   teacher temperature 0.04 (no warm-up), last layer frozen for 1 epoch,
#   drop-path 0.1, gradient clipping 3.0, as SelfPatch.
# DINO's README's better ViT-S/16 run: --cfg-options train_cfg.max_epochs=300
# (and the schedules' T_max/end), custom_hooks.1.teacher_temp=0.07
# custom_hooks.1.warmup_epochs=30 model.head.norm_last_layer=False.
_base_ = [
    '../_base_/models/selfpatch_vit-small-p16.py',
    '../_base_/datasets/imagenet_selfpatch_multicrop.py',
    '../_base_/schedules/selfpatch_adamw_coslr-300e.py',
    '../_base_/default_runtime.py',
]

# The ViT's own [CLS] token after its final LayerNorm, SelfPatch's image-level
# DINOHead and DINOLoss (65536 outputs, temperatures 0.04 / 0.1, centre
# momentum 0.9); no neck, no patch head.
model = dict(
    _delete_=True,
    type='DINOSelfSupervisor',
    num_global_views=2,
    data_preprocessor=dict(
        _base_.model.data_preprocessor, type='MultiCropDataPreprocessor'),
    backbone=dict(
        _base_.model.backbone,
        with_cls_token=True,
        final_norm=True,
        out_type='cls_token'),
    head=_base_.model.head)

max_epochs = 100
# The base's cosines end at its 300 epochs; end them at this run's (the
# schedule base is plain data: mmengine configs cannot share a function).
param_scheduler = [
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], T_max=max_epochs - _base_.warmup_epochs,
         end=max_epochs),
    dict(_base_.param_scheduler[2], T_max=max_epochs, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs)
train_dataloader = dict(
    batch_size=64,
    dataset=dict(pipeline=[
        _base_.train_pipeline[0],
        dict(
            _base_.multicrop,
            global_crops_scale=(0.4, 1.0),
            local_crops_scale=(0.05, 0.4)),
        _base_.train_pipeline[2],
    ]))
