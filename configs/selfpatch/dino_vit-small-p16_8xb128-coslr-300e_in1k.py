# DINO baseline from the same code: the patch branch is off, so the teacher
# sees only the 2 global crops and there is no patch head.
_base_ = './selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py'

model = dict(with_patch_loss=False, patch_head=None)
