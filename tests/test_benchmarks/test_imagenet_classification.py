"""ImageNet linear evaluation and fine-tuning configs, end to end.

A generated ImageNet-layout folder (``{train,val}/<class>/*.png``) whose
classes are solid colours: every crop, flip and resize of an image is the
same solid image, so each class is one point in feature space and a
classifier that has separated the points scores exactly 100 % top-1 on
val. Each config trains from a tools/train.py-style checkpoint of the demo
model (tiny ViT at 64 px) with ``tools/train.py``, then ``tools/test.py``
prints ``accuracy/top1``: 100.0.
"""
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import derive_config, run_tool

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
TRAIN = REPO_ROOT / 'tools' / 'train.py'
TEST = REPO_ROOT / 'tools' / 'test.py'
BENCH = REPO_ROOT / 'configs' / 'selfpatch' / 'benchmarks'
LINEAR_CFG = BENCH / 'linear_vit-small-p16_8xb128-coslr-100e_in1k.py'
FINETUNE_CFG = BENCH / 'vit-small-p16_8xb128-finetune-coslr-100e_in1k.py'

sys.path.insert(0, str(REPO_ROOT / 'tests' / 'test_tools'))
from dense_eval_utils import save_demo_checkpoint  # noqa: E402

# black, white, red, green, blue (RGB)
COLOURS = [(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255)]
NUM_TRAIN, NUM_VAL = 4, 2  # images per class


def make_imagenet_folder(root: Path) -> Path:
    """``root/{train,val}/<class>/*.png`` of solid colours, sizes varying."""
    rng = np.random.default_rng(0)
    for split, n in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        for c, colour in enumerate(COLOURS):
            folder = root / split / f'n{c:08d}'
            folder.mkdir(parents=True)
            for i in range(n):
                h, w = rng.integers(72, 120, size=2)
                img = np.full((h, w, 3), colour, np.uint8)
                Image.fromarray(img).save(folder / f'{split}_{c}_{i}.png')
    return root


def _loaders(data_root: Path) -> dict:
    options = {}
    for loader in ('train_dataloader.', 'val_dataloader.',
                   'test_dataloader.'):
        options.update({
            f'{loader}dataset.data_root': str(data_root),
            f'{loader}batch_size': 10,
            f'{loader}num_workers': 0,
            f'{loader}persistent_workers': False,
            f'{loader}pin_memory': False,
        })
    for loader in ('val_dataloader.', 'test_dataloader.'):
        options[f'{loader}dataset.pipeline.1.scale'] = 72  # ResizeEdge
        options[f'{loader}dataset.pipeline.2.crop_size'] = 64  # CenterCrop
    return options


def tiny_options(data_root: Path, backbone: dict, in_channels: int,
                 epochs: int) -> dict:
    """The demo ViT (96-d, 4 blocks, patch 8) at 64 px, 5 classes,
    ``epochs`` epochs of 2 iterations."""
    options = _loaders(data_root)
    options.update({
        'model.backbone.arch': dict(_delete_=True, embed_dims=96,
                                    num_layers=4, num_heads=3,
                                    feedforward_channels=384),
        'model.backbone.img_size': 64,
        'model.backbone.patch_size': 8,
        'model.head.num_classes': len(COLOURS),
        'model.head.in_channels': in_channels,
        'data_preprocessor.num_classes': len(COLOURS),
        'train_dataloader.dataset.pipeline.1.scale': 64,  # RandomResizedCrop
        'train_cfg.max_epochs': epochs,
        'default_hooks.logger.interval': 1,
        'randomness': dict(seed=0),
    })
    options.update({f'model.backbone.{k}': v for k, v in backbone.items()})
    return options


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('imagenet')
    return dict(root=make_imagenet_folder(tmp / 'imagenet'),
                pretrain=save_demo_checkpoint(tmp / 'pretrain.pth'))


def _train_and_test(cfg_src: Path, options: dict, data: dict, tmp: Path,
                    epochs: int) -> tuple:
    cfg = derive_config(cfg_src, tmp / 'cfg.py', options)
    out = run_tool(TRAIN, cfg, '--work-dir', tmp / 'work', '--cfg-options',
                   f"model.backbone.init_cfg.checkpoint={data['pretrain']}",
                   cwd=tmp, timeout=600).stdout
    trained = tmp / 'work' / f'epoch_{epochs}.pth'
    assert trained.is_file(), out[-3000:]
    test_out = run_tool(TEST, cfg, trained, '--work-dir', tmp / 'test',
                        cwd=tmp, timeout=300).stdout
    match = re.search(r'accuracy/top1: (\d+\.\d+)', test_out)
    assert match, test_out[-3000:]
    return out, float(match.group(1)), trained


def _state(path: Path) -> dict:
    from selfpatch_mm.checkpoint import load_checkpoint_file
    return load_checkpoint_file(str(path), 'cpu')['state_dict']


@pytest.mark.slow
def test_linear_eval_trains_and_tests(data, tmp_path):
    epochs = 4
    options = tiny_options(data['root'], dict(out_indices=(0, 1, 2, 3)),
                           4 * 96, epochs)
    # a short run: a larger step than ImageNet's 0.004, no decay
    options.update({'optim_wrapper.optimizer.lr': 0.2,
                    'param_scheduler': [],
                    'default_hooks.checkpoint.max_keep_ckpts': epochs})
    out, top1, trained = _train_and_test(LINEAR_CFG, options, data,
                                         tmp_path, epochs)
    assert top1 == 100.0, out[-3000:]
    # the frozen backbone is the pretraining teacher, bit for bit; the head
    # is one Linear over the 4 concatenated blocks
    pre, post = _state(data['pretrain']), _state(trained)
    backbone = {k[9:]: v for k, v in post.items()
                if k.startswith('backbone.')}
    assert backbone
    for k, v in backbone.items():
        assert torch.equal(v, pre['teacher.backbone.' + k]), k
    head = sorted(k for k in post if k.startswith('head.'))
    assert head == ['head.fc.bias', 'head.fc.weight']
    assert post['head.fc.weight'].shape == (len(COLOURS), 4 * 96)


@pytest.mark.slow
def test_finetune_trains_and_tests(data, tmp_path):
    """The MAE recipe (layer-wise lr decay, Mixup/CutMix, label smoothing,
    drop path) trains the whole ViT from the checkpoint's teacher.
    RandAugment and RandomErasing are left out here: they recolour and
    blot the images, and the answer would no longer be known."""
    epochs = 4
    options = tiny_options(data['root'], dict(out_type='avg_featmap'), 96,
                           epochs)
    options.update({
        'train_dataloader.dataset.pipeline': [
            dict(type='LoadImageFromFile'),
            dict(type='RandomResizedCrop', scale=64, backend='pillow',
                 interpolation='bicubic'),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs'),
        ],
        # 8 iterations instead of 125k: no warm-up, a constant lr
        'param_scheduler': [],
        'default_hooks.checkpoint.max_keep_ckpts': epochs,
    })
    out, top1, trained = _train_and_test(FINETUNE_CFG, options, data,
                                         tmp_path, epochs)
    assert top1 == 100.0, out[-3000:]
    # the backbone's own Pretrained loading took the teacher, then it trained
    assert (f"loaded 51/51 ViT tensors from {data['pretrain']} "
            '(teacher.backbone.*)') in out, out[-3000:]
    pre, post = _state(data['pretrain']), _state(trained)
    assert not torch.equal(post['backbone.layers.0.attn.qkv.weight'],
                           pre['teacher.backbone.layers.0.attn.qkv.weight'])
    assert post['head.fc.weight'].shape == (len(COLOURS), 96)
    assert 'backbone.ln2.weight' in post  # the pooled tokens' LayerNorm
