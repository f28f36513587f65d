# ViT-S/16 from SelfPatch pretraining as a 4-scale mmseg backbone (blocks
# 2/5/8/11, as the official Semantic FPN), shared by the ADE20K configs.
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
    # the EMA teacher's ViT of a tools/train.py pretraining checkpoint
    init_cfg=dict(
        type='Pretrained',
        checkpoint='work_dirs/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k/'
        'epoch_300.pth'))
# Whole-image test: pad to a multiple of 32 (the ViT needs multiples of its
# patch size); mmseg cuts the padding off the prediction.
selfpatch_data_preprocessor = dict(
    size=(512, 512), test_cfg=dict(size_divisor=32))
