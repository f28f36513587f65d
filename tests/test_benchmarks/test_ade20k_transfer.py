"""ADE20K transfer: the Semantic FPN and UperNet benchmark configs.

* The configs build at full scale (ViT-S/16, 150 classes) and keep weight
  decay off position embeddings only (the official effect: its `norm` key
  matched no parameter).
* The Semantic FPN config feeds the FPN four stride-16 maps, as the official
  segmentation backbone; its resampled variant and UperNet feed strides
  4-32.
* On a generated ADE20K-format folder, each config (shrunk to a tiny ViT by
  a small child config) trains a few iterations through ``tools/train.py``
  from a pretraining checkpoint of the demo model, in its default SyncBN
  setting, and ``tools/test.py`` prints mIoU.
* A label value that the decode head cannot take stops training with an
  error naming the file and the value.
"""
import re
import sys
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest
import torch
from helpers import derive_config, run_command

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN = REPO_ROOT / 'tools' / 'train.py'
TEST = REPO_ROOT / 'tools' / 'test.py'
BENCH = REPO_ROOT / 'configs' / 'selfpatch' / 'benchmarks'
FPN_CFG = BENCH / 'fpn_vit-small-p16_8xb4-40k_ade20k-512x512.py'
FPN_RESAMPLED_CFG = (BENCH /
                     'fpn_vit-small-p16-resampled_8xb4-40k_ade20k-512x512.py')
UPERNET_CFG = BENCH / 'upernet_vit-small-p16_8xb2-160k_ade20k-512x512.py'
DEMO_PRETRAIN_CFG = (REPO_ROOT / 'configs' / 'selfpatch' /
                     'selfpatch_vit-tiny-p8_1xb8-2e_demo.py')

NUM_CLASSES = 4  # png values 1..4 (0 = unlabelled, reduce_zero_label)
IMG_H, IMG_W = 48, 64

# The demo ViT (96-d, 4 blocks, patch 8), 64x64 crops, 4 classes; the rest
# (EncoderDecoder, heads, AdamW + poly, SyncBN, CheckSegLabels, pipelines)
# comes from the benchmark config (tests/helpers: derive_config).
_LOADER = dict(num_workers=0, persistent_workers=False)
# the first ADE20K classes (ids 0..3), so the table has 4 rows
_META = dict(classes=('wall', 'building', 'sky', 'floor'))


def tiny_options(data_root: Path, heads: dict) -> dict:
    """Settings of the tiny run, on top of a benchmark config."""
    train, test = 'train_dataloader.', 'test_dataloader.'
    options = {
        'model.data_preprocessor.size': (64, 64),
        'model.backbone.arch': dict(_delete_=True, embed_dims=96,
                                    num_layers=4, num_heads=3,
                                    feedforward_channels=384),
        'model.backbone.img_size': 64,
        'model.backbone.patch_size': 8,
        'model.backbone.out_indices': (0, 1, 2, 3),
        # train: CheckSegLabels, RandomResize, RandomCrop
        f'{train}dataset.pipeline.2.num_classes': NUM_CLASSES,
        f'{train}dataset.pipeline.3.scale': (128, 64),
        f'{train}dataset.pipeline.3.ratio_range': (0.8, 1.2),
        f'{train}dataset.pipeline.4.crop_size': (64, 64),
        f'{train}batch_size': 2,
        'train_cfg.max_iters': 4,
        'train_cfg.val_interval': 4,
        'param_scheduler': [
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                 end=2),
            dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False,
                 begin=2, end=4),
        ],
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 4,
    }
    for loader in (train, 'val_dataloader.', test):
        options.update({f'{loader}{k}': v for k, v in _LOADER.items()})
        options[f'{loader}dataset.data_root'] = str(data_root)
        options[f'{loader}dataset.metainfo'] = _META
    for loader in ('val_dataloader.', test):
        # test: Resize, CheckSegLabels
        options[f'{loader}dataset.pipeline.1.scale'] = (128, 64)
        options[f'{loader}dataset.pipeline.3.num_classes'] = NUM_CLASSES
    options.update({f'model.{k}': v for k, v in heads.items()})
    return options


FPN_HEADS = {
    'neck.in_channels': [96] * 4,
    'neck.out_channels': 32,
    'decode_head.in_channels': [32] * 4,
    'decode_head.channels': 16,
    'decode_head.num_classes': NUM_CLASSES,
}
UPERNET_HEADS = {
    'decode_head.in_channels': [96] * 4,
    'decode_head.channels': 32,
    'decode_head.num_classes': NUM_CLASSES,
    'auxiliary_head.in_channels': 96,
    'auxiliary_head.channels': 16,
    'auxiliary_head.num_classes': NUM_CLASSES,
}


def _run(cmd: List[str], cwd: Path, expect_ok: bool = True) -> str:
    """Run a tool; return its output, failing the test on a wrong status."""
    return run_command([sys.executable, *cmd], cwd,
                       expect_ok=expect_ok).stdout


def make_ade20k_folder(root: Path,
                       num_train: int = 4,
                       num_val: int = 2,
                       extra_value: int = 0) -> Path:
    """Write a tiny ADE20K-format folder.

    ``images/{training,validation}/*.jpg`` and
    ``annotations/{training,validation}/*.png`` (uint8, 0 = unlabelled,
    classes 1..NUM_CLASSES). Each class is a horizontal band with its own
    colour, so the maps are learnable. With ``extra_value``, a block of
    every annotation holds that pixel value.
    """
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, size=(NUM_CLASSES + 1, 3), dtype=np.uint8)
    for split, n in (('training', num_train), ('validation', num_val)):
        (root / 'images' / split).mkdir(parents=True, exist_ok=True)
        (root / 'annotations' / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            bands = rng.permutation(NUM_CLASSES + 1)
            seg = np.repeat(bands, IMG_H // (NUM_CLASSES + 1) + 1)[:IMG_H]
            seg = np.repeat(seg[:, None], IMG_W, axis=1).astype(np.uint8)
            if extra_value:
                seg[:8, :8] = extra_value
            img = palette[np.minimum(seg, NUM_CLASSES)].astype(np.int16)
            img += rng.integers(-20, 21, size=img.shape, dtype=np.int16)
            img = np.clip(img, 0, 255).astype(np.uint8)
            name = f'ADE_{split[0]}_{i:08d}'
            cv2.imwrite(str(root / 'images' / split / f'{name}.jpg'), img)
            cv2.imwrite(str(root / 'annotations' / split / f'{name}.png'), seg)
    return root


@pytest.fixture(scope='session')
def demo_checkpoint(tmp_path_factory) -> Path:
    """An mmengine-style checkpoint of the (untrained) demo SelfPatch model,
    as ``tools/train.py`` writes it (student + ``teacher.*`` EMA keys)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import selfpatch_mm.models  # noqa: F401
    cfg = Config.fromfile(str(DEMO_PRETRAIN_CFG))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    path = tmp_path_factory.mktemp('pretrain') / 'epoch_1.pth'
    torch.save({
        'meta': dict(epoch=1, iter=1),
        'state_dict': model.state_dict()
    }, path)
    return path


@pytest.fixture(scope='session')
def ade_root(tmp_path_factory) -> Path:
    return make_ade20k_folder(tmp_path_factory.mktemp('ade'))


def _build(config: Path):
    """The benchmark model with random weights, SyncBN reverted."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    import selfpatch_mm.models  # noqa: F401
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
    return cfg, model


# config, strides of the four maps the ViT gives the neck/decoder, stride of
# the prediction
STRIDES = {
    'fpn': (FPN_CFG, (16, 16, 16, 16), 16),
    'fpn_resampled': (FPN_RESAMPLED_CFG, (4, 8, 16, 32), 4),
    'upernet': (UPERNET_CFG, (4, 8, 16, 32), 4),
}


@pytest.mark.parametrize('name', list(STRIDES))
def test_maps_entering_the_decoder_have_the_official_strides(
        name: str) -> None:
    """Semantic FPN (official segmentation backbone, vit_SelfPatch.py lines
    366-384 of alinlab/SelfPatch 81aef14): blocks 2, 5, 8, 11 at stride 16,
    no resampling layer; the resampled variant and UperNet: 4, 8, 16, 32."""
    config, strides, _ = STRIDES[name]
    cfg, model = _build(config)
    seen = []
    # the backbone's maps go straight into the FPN neck (Semantic FPN) or
    # into UPerHead (UperNet has no neck)
    assert (cfg.model.get('neck') is not None) == name.startswith('fpn')
    if name.startswith('fpn'):
        model.neck.register_forward_hook(lambda mod, args, out: seen.append(
            [tuple(t.shape) for t in args[0]]))
    else:
        model.backbone.register_forward_hook(
            lambda mod, args, out: seen.append([tuple(t.shape) for t in out]))
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 96), mode='tensor')
    assert seen[0] == [(1, 384, 64 // s, 96 // s) for s in strides]
    resamplers = [n for n, _ in model.backbone.named_children()
                  if n.startswith('fpn')]
    assert resamplers == ([] if strides[0] == 16 else
                          ['fpn1', 'fpn2', 'fpn3', 'fpn4'])


@pytest.mark.parametrize('name', list(STRIDES))
def test_benchmark_config_full_scale(name: str) -> None:
    """The paper-scale model builds, predicts 150 classes (at stride 16 for
    the official Semantic FPN, 4 otherwise) and has no weight decay on
    pos_embed only (norms decayed, officially)."""
    config, _, out_stride = STRIDES[name]
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    cfg, model = _build(config)
    assert cfg.model.backbone.type == 'mmpretrain.SelfPatchDenseViT'
    assert cfg.model.backbone.arch == 'deit-small'
    assert tuple(cfg.model.backbone.out_indices) == (2, 5, 8, 11)
    assert cfg.model.backbone.drop_path_rate == 0.1
    steps = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert steps.index('CheckSegLabels') == steps.index('LoadAnnotations') + 1
    steps = [t['type'] for t in cfg.test_dataloader.dataset.pipeline]
    assert steps.index('CheckSegLabels') == steps.index('LoadAnnotations') + 1
    assert cfg.param_scheduler[0].end == 1500
    assert cfg.param_scheduler[1].end == cfg.train_cfg.max_iters

    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96), mode='tensor')
    assert out.shape == (1, 150, 64 // out_stride, 96 // out_stride)

    optim = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    decay = {}
    for group in optim.param_groups:
        for p in group['params']:
            decay[id(p)] = group['weight_decay']
    named = dict(model.named_parameters())
    assert decay[id(named['backbone.pos_embed'])] == 0
    assert decay[id(named['backbone.layers.0.ln1.weight'])] == 0.01
    assert decay[id(named['decode_head.conv_seg.weight'])] == 0.01
    assert decay[id(named['backbone.layers.0.attn.qkv.weight'])] == 0.01
    bn = [n for n, m in model.named_modules()
          if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bn and all(decay[id(named[f'{n}.weight'])] == 0.01 for n in bn)
    # the rest of the recipe is the same in both Semantic FPN configs
    if name == 'fpn_resampled':
        official = Config.fromfile(str(FPN_CFG)).to_dict()
        variant = Config.fromfile(str(config)).to_dict()
        official['model']['backbone'].pop('out_mode')
        variant['model']['backbone'].pop('out_mode')
        assert variant['model'] == official['model']
        for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler',
                    'train_cfg'):
            assert variant[key] == official[key], key


@pytest.mark.slow
@pytest.mark.parametrize(
    'config, heads', [(FPN_CFG, FPN_HEADS), (FPN_RESAMPLED_CFG, FPN_HEADS),
                      (UPERNET_CFG, UPERNET_HEADS)],
    ids=['fpn', 'fpn_resampled', 'upernet'])
def test_train_then_test_prints_miou(config: Path, heads: dict,
                                     demo_checkpoint: Path, ade_root: Path,
                                     tmp_path: Path) -> None:
    tiny = derive_config(config, tmp_path / 'tiny.py',
                         tiny_options(ade_root, heads))
    work_dir = tmp_path / 'work'
    # The documented way to pick the pretraining checkpoint; SyncBN stays
    # in the config (single process: it must turn into BN by itself).
    out = _run([
        TRAIN, tiny, '--work-dir', work_dir, '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={demo_checkpoint}'
    ], tmp_path)
    assert f'from {demo_checkpoint} (teacher' in out, out[-4000:]
    assert 'mIoU' in out  # validation after iteration 4
    ckpt = work_dir / 'iter_4.pth'
    assert ckpt.is_file()

    pictures = tmp_path / 'pictures'
    out = _run([
        TEST, tiny, ckpt, '--work-dir', tmp_path / 'test', '--show-dir',
        pictures
    ], tmp_path)
    # --show-dir: mmseg's SegVisualizationHook draws each validation image
    # through the visualizer's LocalVisBackend
    drawn = sorted(p.name for p in pictures.glob('vis_data/vis_image/*.png'))
    val_images = sorted(
        (ade_root / 'images' / 'validation').glob('*.jpg'))
    assert len(drawn) == len(val_images) > 0, drawn
    assert all(d.startswith('test_ADE_') for d in drawn), drawn
    # mmseg's IoUMetric prints a per-class table and the summary line
    match = re.search(r'mIoU: (\d+\.\d+)', out)
    assert match, out[-4000:]
    # (the metric's known answer: test_config_metric_scores_perfect_maps)
    # and its per-class table, one row per class
    for name in ('wall', 'building', 'sky', 'floor'):
        assert re.search(rf'\|\s+{name}\s+\|\s+\d+\.\d+', out), name


@pytest.mark.slow
def test_out_of_range_label_stops_training_with_clear_error(
        tmp_path: Path) -> None:
    """The full FPN config (150 classes) on annotations with pixel value 201
    (label 200 after reduce_zero_label): the run stops before any forward
    with the file and the value, not an index error in the loss."""
    root = make_ade20k_folder(
        tmp_path / 'ade', num_train=2, num_val=1, extra_value=201)
    out = _run([
        TRAIN, FPN_CFG, '--work-dir', tmp_path / 'work', '--cfg-options',
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'model.backbone.init_cfg=None'
    ], tmp_path, expect_ok=False)
    assert 'ValueError' in out
    assert re.search(r"Annotation '.*ADE_t_0000000\d\.png' has label "
                     r'value\(s\) 200, but num_classes is 150', out), \
        out[-4000:]
    assert 'pixel values 201' in out
    assert 'IndexError' not in out and 'out of bounds' not in out


@pytest.mark.parametrize('config', [FPN_CFG, UPERNET_CFG],
                         ids=['fpn', 'upernet'])
def test_config_metric_scores_perfect_maps(config: Path) -> None:
    """Known answer: the config's IoUMetric gives mIoU 100 when the
    prediction is the ground truth, and (50 + 0) / 2 = 25 when class 0 is
    predicted everywhere on a half-and-half map."""
    from mmengine.config import Config
    from mmseg.registry import METRICS

    cfg = Config.fromfile(str(config))
    gt = torch.zeros(1, 8, 8, dtype=torch.long)
    gt[:, :, 4:] = 1

    def score(pred: torch.Tensor) -> float:
        metric = METRICS.build(cfg.test_evaluator)
        metric.dataset_meta = dict(classes=('wall', 'building'))
        metric.process({}, [dict(pred_sem_seg=dict(data=pred),
                                 gt_sem_seg=dict(data=gt))])
        return metric.evaluate(1)['mIoU']

    assert score(gt.clone()) == pytest.approx(100.0)
    # class 0 everywhere: IoU(0) = 32/64, IoU(1) = 0
    assert score(torch.zeros_like(gt)) == pytest.approx(25.0)
