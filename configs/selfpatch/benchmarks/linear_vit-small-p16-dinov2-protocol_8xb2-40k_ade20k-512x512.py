# The frozen linear probe with the two settings of DINOv2's linear ADE20K
# probe that the default probe config leaves out, for numbers comparable
# with DINOv2's tables:
# - the final LayerNorm on each probed layer: DINOv2's segmenter reads
#   get_intermediate_layers(..., norm=True) (facebookresearch/dinov2
#   notebooks/semantic_segmentation.ipynb create_segmenter and
#   dinov2/models/vision_transformer.py, commit b8931f7). A SelfPatch ViT's
#   only final norm is the aggregation module's (neck.norm), loaded from the
#   pretraining checkpoint;
# - sliding-window testing, 512x512 crops at stride 341 (DINOv2's
#   dinov2_vit*14_ade20k_linear_config.py, which that notebook downloads:
#   test_cfg=dict(mode="slide", crop_size=(512, 512), stride=(341, 341))).
# Everything else is ./linear_vit-small-p16_8xb2-40k_ade20k-512x512.py.
_base_ = './linear_vit-small-p16_8xb2-40k_ade20k-512x512.py'

model = dict(
    backbone=dict(out_norm=True),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
