# SelfPatch, ViT-S/16, 8 GPUs x 128 images, 300 epochs on ImageNet-1k
# (alinlab/SelfPatch main_selfpatch.py defaults).
_base_ = [
    '../_base_/models/selfpatch_vit-small-p16.py',
    '../_base_/datasets/imagenet_selfpatch_multicrop.py',
    '../_base_/schedules/selfpatch_adamw_coslr-300e.py',
    '../_base_/default_runtime.py',
]

# MultiCropDataPreprocessor is SelfSupDataPreprocessor plus the optional
# batched photometric stage (DINOMultiCrop photometric='device').
model = dict(data_preprocessor=dict(type='MultiCropDataPreprocessor'))

# Loader per GPU process (docs/benchmarks.md, "Data pipeline"): num_workers
# = CPU cores per GPU minus one for the training process; workers stay alive
# across epochs (no re-fork), batches land in pinned memory for asynchronous
# copies, and each worker keeps 2 batches ready (num_workers x 2 batches of
# about 66 MB of uint8 views in flight; raise it on slow storage).
train_dataloader = dict(
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    prefetch_factor=2)
