# ViT-S/16 from SelfPatch pretraining as a 4-map mmseg backbone (blocks
# 2/5/8/11, as the official Semantic FPN), shared by the ADE20K configs.
# `selfpatch_backbone` resamples the maps to strides 4/8/16/32 (the official
# detection backbone's pyramid, out_mode='pyramid': UperNet and the
# resampled Semantic FPN variant); `selfpatch_backbone_patch_stride` gives
# the four maps unchanged at stride 16, as the official segmentation
# backbone (the Semantic FPN config).
# They use these as `{{_base_.selfpatch_backbone}}` etc.: the mmseg model
# bases already define `model`, and bases may not share keys.
selfpatch_backbone = dict(
    _delete_=True,  # replaces the ResNet of the mmseg model base
    type='mmpretrain.SelfPatchDenseViT',  # custom_imports: see the configs
    arch='deit-small',
    img_size=512,
    patch_size=16,
    out_indices=(2, 5, 8, 11),
    drop_path_rate=0.1,
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    # As the official segmentation backbone (docs/transfer_ade20k.md,
    # "Fidelity"): the 14x14 position table is resized to the 32x32 grid
    # (and to each test image's) by size, mmseg 0.x's resize_pos_embed, not
    # by DINO's scale factor; test images are zero-padded at the bottom and
    # right to a multiple of 16 inside the backbone (PatchEmbed
    # padding='corner') and the prediction is resized to the image.
    # pos_embed_resize='dino' and pad_to_patch=False with the preprocessor's
    # test_cfg=dict(size_divisor=32) give the previous behaviour.
    pos_embed_resize='mmseg',
    pad_to_patch=True,
    # the EMA teacher's ViT of a tools/train.py pretraining checkpoint
    init_cfg=dict(
        type='Pretrained',
        checkpoint='work_dirs/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k/'
        'epoch_300.pth'))
selfpatch_backbone_patch_stride = dict(
    selfpatch_backbone, out_mode='patch_stride')
# Training crops are padded to 512x512 after normalisation (pad 0 = the mean
# colour, labels 255), as the official Pad; whole test images are not padded
# here but inside the backbone (pad_to_patch above).
selfpatch_data_preprocessor = dict(size=(512, 512))
