# Ablation: the SelfPatch code with the patch branch off. The teacher sees
# only the 2 global crops and there is no patch head, but the ViT keeps
# SelfPatch's shape (no [CLS] token; the image token comes from the
# class-attention aggregation module). It is NOT the standard DINO that the
# paper compares against: that is dino_vit-small-p16_8xb64-coslr-100e_in1k.py
# (DINOSelfSupervisor: a [CLS] token, no aggregation module).
_base_ = './selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py'

model = dict(with_patch_loss=False, patch_head=None)
