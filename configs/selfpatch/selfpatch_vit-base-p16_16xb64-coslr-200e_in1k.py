# SelfPatch, ViT-B/16, 16 GPUs x 64 images = 1024, 200 epochs on ImageNet-1k:
# the ViT-S/16 paper config with DINO's ViT-B choices. The SelfPatch authors
# (alinlab/SelfPatch, commit 81aef14) train ViT-S only; DINO's repository
# (facebookresearch/dino, commit 7c446df) trains ViT-B with main_dino.py's
# defaults plus `--arch vit_base` (README, "DINO with ViT-base network":
# run_with_submitit.py --nodes 2 --ngpus 8 --use_volta32 --arch vit_base).
# Settings and their source:
# - backbone: vit_base (vision_transformer.py: 768-d, 12 blocks, 12 heads,
#   mlp_ratio 4, qkv_bias), mmpretrain arch 'b'; drop path 0.1
#   (main_dino.py --drop_path_rate 0.1, as the ViT-S base); the aggregation
#   module gets the backbone's 12 heads (main_selfpatch.py builds
#   SelfPatchHead(embed_dim, num_heads, k_num) from the student's).
# - batch: 16 GPUs (2 nodes x 8, README) x 64 images (--batch_size_per_gpu
#   64) = 1024; lr 0.0005 per 256 images, scaled linearly (main_dino.py
#   --lr, the same rule as main_selfpatch.py): 0.002 at 1024.
# - heads: norm_last_layer=True (the README: "removing last layer
#   normalization (only safe with --arch vit_small)"); 65536 / 4096 outputs.
# - teacher: momentum 0.996 -> 1, temperature 0.04 without warm-up
#   (main_dino.py defaults, as the ViT-S base). DINO's README raises it to
#   0.07 with a 30-epoch warm-up for its longer ViT-S run only:
#   custom_hooks.1.teacher_temp=0.07 custom_hooks.1.warmup_epochs=30.
# - unchanged from the ViT-S base (main_dino.py and main_selfpatch.py agree):
#   AdamW, weight decay 0.04 -> 0.4, per-parameter gradient clipping 3.0,
#   10 warm-up epochs, cosine to 1e-6, last layer frozen 1 epoch, the crops.
# The released ViT-B/16's args.txt (linked from DINO's README) could not be
# read from this machine, so nothing here is taken from it.
#
# Memory: MEASURED on the CPU (2 cores of an Intel Xeon, no GPU available),
# fp32, the process's peak RSS over real training steps of this config at
# batch 1, 2 and 4 (benchmark_pretrain.py THIS_CONFIG --batch-size B
# --no-breakdown; docs/benchmarks.md, "Activation checkpointing"): 4012,
# 4427 and 5537 MiB, so 555 MiB more per image between 2 and 4 (ViT-S/16:
# 369; the heads' 65536/4096-wide outputs do not grow with the ViT). 64
# images per GPU then hold about 35 GiB of fp32 activations, about 10 GiB
# with model.backbone.with_cp=True (155 MiB per image). Scaled from the CPU,
# linearly per image; mixed precision (the configs' choice on CUDA, and
# DINO's: it ran ViT-B on 32 GB V100s, --use_volta32) keeps most saved
# activations at half size. Confirm on the GPU with
#   python tools/analysis_tools/benchmark_pretrain.py THIS_CONFIG \
#       --device cuda --amp fp16 --sweep --batch-sizes 32 64 96
_base_ = './selfpatch_vit-small-p16_8xb128-coslr-200e_in1k.py'

embed_dims = 768
model = dict(
    backbone=dict(arch='b'),  # mmpretrain's ViT-B: 768-d, 12 blocks, 12 heads
    neck=dict(in_channels=embed_dims, num_heads=12),
    head=dict(in_channels=embed_dims),
    patch_head=dict(in_channels=embed_dims))
train_dataloader = dict(batch_size=64)
