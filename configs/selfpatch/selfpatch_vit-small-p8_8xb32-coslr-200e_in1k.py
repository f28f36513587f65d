# SelfPatch, ViT-S/8 (8-pixel patches), 8 GPUs x 32 images, 200 epochs on
# ImageNet-1k; otherwise the paper's ViT-S/16 recipe (the 200-epoch config).
# The learning rate follows the linear scaling rule (auto_scale_lr:
# 0.0005 x 256 / 256 at 8 x 32 images).
#
# Memory and batch per GPU: an ESTIMATE, not a measurement (no GPU was
# available). Per image the student sees 2 x 28^2 + 8 x 12^2 = 2720 tokens
# against 680 at patch 16 (x4), and the teacher, as officially in SelfPatch,
# every crop too. Everything stored per token scales x4: the ViT's
# activations with the SDPA attention kernels (which keep no N^2 attention
# map), the neck's positive matching (a 3x3 window, linear in N) and the
# patch head's 4096-wide logits (student, teacher and their softmaxes,
# about 45 MB per image per copy in fp32, the largest item). So 32 images
# per GPU take about what the paper's 128 take at patch 16. With the plain
# attention of the official code (benchmark_pretrain.py --no-sdpa) the
# 6 x N^2 maps grow x16 on the global crops, about x5.5 in all: use 16-24
# images per GPU there. Check with
#   python tools/analysis_tools/benchmark_pretrain.py THIS_CONFIG \
#       --device cuda --amp fp16 --sweep --batch-sizes 16 32 48
# Measured on the CPU (benchmark_pretrain.py THIS_CONFIG --batch-size 1,
# fp32): 755 GFLOP per image per training step (forward and backward,
# student and teacher), 4.5x the 169 of ViT-S/16 (docs/benchmarks.md).
_base_ = './selfpatch_vit-small-p16_8xb128-coslr-200e_in1k.py'

model = dict(backbone=dict(patch_size=8))
train_dataloader = dict(batch_size=32)

# Precision: bf16 on GPUs that have it (A100, H100: compute capability 8.0
# and newer), fp32 on older GPUs and on the CPU, never fp16. Both official
# help texts (main_dino.py and main_selfpatch.py, --use_fp16) say: "We
# recommend disabling mixed precision if the loss is unstable, if reducing
# the patch size or if training with bigger ViTs." bf16 keeps fp32's
# exponent range (no overflow, no loss scaling); its accuracy over a whole
# run is measured in docs/training_on_gpus.md. `--amp-dtype fp16` still
# forces fp16 explicitly.
optim_wrapper = dict(dtype='bfloat16', bf16_fallback='fp32')
# Teacher momentum for a total batch of 256 (8 x 32): the official help text
# of --momentum_teacher (main_dino.py and main_selfpatch.py, default 0.996
# for the 1024 of the paper's runs): "We recommend setting a higher value
# with small batches: for example use 0.9995 with batch size of 256."
custom_hooks = [
    dict(_base_.custom_hooks[0], momentum=0.9995),
    *_base_.custom_hooks[1:],
]
