# Mask R-CNN + FPN on COCO, with the official detection config's backbone:
# ViT-S/16 built with 8 attention heads (alinlab/SelfPatch
# detection/configs/selfpatch/mask_rcnn_vit_small_12_p16_1x_coco.py,
# `num_heads=8`). Pretraining uses 6; the qkv weights have the same shape
# either way, so the official run loaded them and split them into 8 heads of
# 48 channels instead of 6 of 64. ./mask-rcnn_vit-small-p16_fpn_1x_coco.py
# keeps the pretrained 6 heads; this config reproduces the official run.
_base_ = './mask-rcnn_vit-small-p16_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=384,
            num_layers=12,
            num_heads=8,
            feedforward_channels=1536)))
