# SelfPatch, ViT-S/8 (8-pixel patches), 8 GPUs x 32 images, 200 epochs on
# ImageNet-1k; otherwise the paper's ViT-S/16 recipe (the 200-epoch config).
# The learning rate follows the linear scaling rule (auto_scale_lr:
# 0.0005 x 256 / 256 at 8 x 32 images).
#
# Memory and batch per GPU: MEASURED on the CPU (2 cores of an Intel Xeon,
# no GPU available), fp32, the process's peak RSS over real training steps
# of this config at batch 1, 2 and 4 (benchmark_pretrain.py THIS_CONFIG
# --batch-size B --no-breakdown; docs/benchmarks.md, "Activation
# checkpointing"): 3188, 4593 and 7235 MiB, so 1321 MiB more per image
# between 2 and 4 (ViT-S/16: 369 MiB, x3.6), on about 2 GiB of fixed cost
# (libraries, weights, AdamW state). So 32 images per GPU hold about 41 GiB
# of fp32 activations (the paper's 128 ViT-S/16 images: 46 GiB): they fit
# an 80 GB GPU, not a 40 GB one, in fp32. With model.backbone.with_cp=True
# (activation checkpointing) it is 508 MiB per image, about 16 GiB at 32
# (it costs +18 % FLOPs per step at ViT-S/16: the student's blocks run
# forward twice). Scaled from the CPU, linearly per image: the CUDA
# allocator and kernels differ, and mixed precision (what the configs use
# on CUDA) keeps most saved activations at half size, so confirm on the GPU
# with
#   python tools/analysis_tools/benchmark_pretrain.py THIS_CONFIG \
#       --device cuda --amp fp16 --sweep --batch-sizes 16 32 48
# (add --cfg-options model.backbone.with_cp=True for the leaner variant).
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
