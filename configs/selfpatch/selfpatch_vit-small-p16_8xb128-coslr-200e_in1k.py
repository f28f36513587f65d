# SelfPatch, ViT-S/16, 8 GPUs x 128 images, 200 epochs on ImageNet-1k: the
# length of the paper's ViT-S/16 pretraining (Yun et al., CVPR 2022,
# arXiv:2206.07990). Everything else is the official main_selfpatch.py
# setting of the 300-epoch config. With the length:
# - scaled: every cosine spans the 200 epochs: the learning rate after its
#   warm-up (190 epochs down to 1e-6), the weight decay 0.04 -> 0.4, and
#   TeacherEMAHook's momentum 0.996 -> 1 (it follows the run's iterations
#   by itself);
# - kept in epochs, as main_selfpatch.py has no setting that scales them
#   with the run: the 10-epoch learning-rate warm-up, the teacher
#   temperature (0.04, no warm-up: warmup_teacher_temp_epochs=0) and the
#   last layer frozen for 1 epoch (FreezeLastLayerHook).
_base_ = './selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py'

max_epochs = 200
# The base's cosines end at its 300 epochs; end them at this run's (the
# schedule base is plain data: mmengine configs cannot share a function).
param_scheduler = [
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], T_max=max_epochs - _base_.warmup_epochs,
         end=max_epochs),
    dict(_base_.param_scheduler[2], T_max=max_epochs, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs)
