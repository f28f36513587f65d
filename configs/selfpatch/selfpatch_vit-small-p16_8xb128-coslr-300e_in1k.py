# SelfPatch, ViT-S/16, 8 GPUs x 128 images, 300 epochs on ImageNet-1k
# (alinlab/SelfPatch main_selfpatch.py defaults).
_base_ = [
    '../_base_/models/selfpatch_vit-small-p16.py',
    '../_base_/datasets/imagenet_selfpatch_multicrop.py',
    '../_base_/schedules/selfpatch_adamw_coslr-300e.py',
    '../_base_/default_runtime.py',
]
