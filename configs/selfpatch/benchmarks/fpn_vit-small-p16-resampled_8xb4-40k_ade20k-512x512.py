# Semantic FPN on ADE20K with a resampled pyramid: NOT the official model.
# The ViT's four stride-16 maps (blocks 2, 5, 8, 11) are resampled to
# strides 4, 8, 16 and 32 as in the official *detection* backbone
# (ConvTranspose2d -> SyncBN -> GELU -> ConvTranspose2d; ConvTranspose2d;
# identity; MaxPool2d), three layers that pretraining did not train, and the
# prediction is made at stride 4. The official Semantic FPN
# (./fpn_vit-small-p16_8xb4-40k_ade20k-512x512.py, the paper's 41.2 mIoU)
# feeds the stride-16 maps unchanged. Kept to compare the two, and because
# earlier versions of this project used it for the Semantic FPN config.
_base_ = './fpn_vit-small-p16_8xb4-40k_ade20k-512x512.py'

model = dict(backbone=dict(out_mode='pyramid'))
