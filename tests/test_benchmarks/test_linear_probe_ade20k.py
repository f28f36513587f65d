"""The frozen linear segmentation probe on the ADE20K layout.

After a short ``tools/train.py`` run from a pretraining checkpoint the
backbone is bit-identical to the checkpoint's teacher, the head is one 1x1
convolution after a BatchNorm, and ``tools/test.py`` prints the mIoU that
the annotation files give for a probe with a known answer.
"""
import importlib.util
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import derive_config

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
TRAIN = REPO_ROOT / 'tools' / 'train.py'
TEST = REPO_ROOT / 'tools' / 'test.py'
PROBE_CFG = (REPO_ROOT / 'configs' / 'selfpatch' / 'benchmarks' /
             'linear_vit-small-p16_8xb2-40k_ade20k-512x512.py')

# The ADE20K transfer test's generated folder, demo checkpoint and runner
# (pytest's importlib mode: load the sibling module by path).
_spec = importlib.util.spec_from_file_location(
    'ade20k_transfer_helpers', HERE / 'test_ade20k_transfer.py')
_ade = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ade)

# The transfer test's tiny settings (demo ViT: 96-d, 4 blocks, patch 8;
# 64x64 crops; 4 iterations) with all 4 blocks concatenated into the probe
PROBE_HEAD = {
    'decode_head.in_channels': [96] * 4,
    'decode_head.in_index': [0, 1, 2, 3],
    'decode_head.num_classes': _ade.NUM_CLASSES,
}


@pytest.fixture(scope='module')
def probe_run(tmp_path_factory):
    """Train the tiny probe 4 iterations from the demo checkpoint."""
    tmp = tmp_path_factory.mktemp('probe')
    ade_root = _ade.make_ade20k_folder(tmp / 'ade')
    ckpt = _demo_checkpoint(tmp / 'pretrain.pth')
    cfg = derive_config(PROBE_CFG, tmp / 'probe.py',
                        _ade.tiny_options(ade_root, PROBE_HEAD))
    work_dir = tmp / 'work'
    out = _ade._run([
        TRAIN, cfg, '--work-dir', work_dir, '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={ckpt}'
    ], tmp)
    return dict(tmp=tmp, cfg=cfg, pretrain=ckpt, out=out, ade_root=ade_root,
                trained=work_dir / 'iter_4.pth')


def _demo_checkpoint(path: Path) -> Path:
    """A tools/train.py-style checkpoint of the untrained demo model."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import selfpatch_mm.models  # noqa: F401
    cfg = Config.fromfile(str(_ade.DEMO_PRETRAIN_CFG))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    torch.save({'meta': dict(iter=1), 'state_dict': model.state_dict()},
               path)
    return path


def _state(path: Path) -> dict:
    from selfpatch_mm.checkpoint import load_checkpoint_file
    ckpt = load_checkpoint_file(str(path), 'cpu')
    return ckpt.get('state_dict', ckpt)


@pytest.mark.slow
def test_probe_backbone_unchanged_and_head_is_linear(probe_run) -> None:
    out = probe_run['out']
    assert f"from {probe_run['pretrain']} (teacher" in out, out[-4000:]
    assert 'mIoU' in out  # validation after iteration 4
    pre, post = _state(probe_run['pretrain']), _state(probe_run['trained'])
    teacher = {
        k[len('teacher.backbone.'):]: v
        for k, v in pre.items() if k.startswith('teacher.backbone.')
    }
    backbone = {
        k[len('backbone.'):]: v
        for k, v in post.items() if k.startswith('backbone.')
    }
    assert backbone and set(backbone) <= set(teacher)
    # every ViT tensor, bit for bit (pos_embed: same 8x8 grid at 64 px)
    for key, value in backbone.items():
        assert torch.equal(value, teacher[key]), key
    # the head did train: its only weights are BN and one 1x1 conv
    head = {k: v for k, v in post.items() if k.startswith('decode_head.')}
    weights = sorted(k for k, v in head.items() if v.dim() > 1)
    assert weights == ['decode_head.conv_seg.weight'], weights
    assert head['decode_head.conv_seg.weight'].shape == (
        _ade.NUM_CLASSES, 4 * 96, 1, 1)
    assert 'decode_head.bn.running_mean' in head
    assert not torch.equal(head['decode_head.bn.running_mean'],
                           torch.zeros(4 * 96))


def test_probe_model_frozen_in_train_mode() -> None:
    """Built from the full config: nothing in the backbone trains, even
    after ``model.train()``; the head is BN + Conv2d(384, 150, 1)."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    import selfpatch_mm.models  # noqa: F401
    import selfpatch_mm.models.seg_heads  # noqa: F401
    cfg = Config.fromfile(str(PROBE_CFG))
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.train()
    assert not model.backbone.training
    assert not any(m.training for m in model.backbone.modules())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    convs = [m for m in model.decode_head.modules()
             if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (1, 1)
    assert (convs[0].in_channels, convs[0].out_channels) == (384, 150)
    assert model.decode_head.training


def _constant_probe(trained: Path, path: Path, cls: int) -> Path:
    """The trained probe with a classifier that predicts ``cls`` at every
    pixel (zero weights, the bias picks the class)."""
    from selfpatch_mm.checkpoint import load_checkpoint_file
    ckpt = load_checkpoint_file(str(trained), 'cpu')
    state = dict(ckpt['state_dict'])
    weight = state['decode_head.conv_seg.weight']
    state['decode_head.conv_seg.weight'] = torch.zeros_like(weight)
    bias = torch.full((weight.shape[0], ), -1.0)
    bias[cls] = 1.0
    state['decode_head.conv_seg.bias'] = bias
    torch.save({'state_dict': state, 'meta': ckpt.get('meta', {})}, path)
    return path


def _val_labels(ade_root: Path) -> np.ndarray:
    """Every validation pixel's class, as mmseg reads the pngs with
    ``reduce_zero_label``: 0 (unlabelled) becomes 255, ``v`` ``v - 1``."""
    maps = [
        cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(
            (ade_root / 'annotations' / 'validation').glob('*.png'))
    ]
    values = np.concatenate([m.ravel() for m in maps]).astype(np.int64)
    return np.where(values == 0, 255, values - 1)


@pytest.mark.slow
def test_probe_test_prints_known_miou(probe_run) -> None:
    """tools/test.py on a probe that answers one class everywhere prints
    the mIoU computed here from the annotation files.

    Predicting class ``c`` at every pixel, the IoU of ``c`` is
    #(label == c) / #(labelled pixels) (the union is every labelled pixel);
    every other class present has IoU 0, and absent classes (0 / 0) are
    left out of mmseg's mean. The class is the rarest present one, so a
    wrong class, label shift or ignore index changes the figure.
    """
    labels = _val_labels(probe_run['ade_root'])
    labelled = labels[labels != 255]
    present, counts = np.unique(labelled, return_counts=True)
    cls = int(present[np.argmin(counts)])
    iou = counts.min() / labelled.size
    want = 100 * iou / len(present)
    ckpt = _constant_probe(probe_run['trained'], probe_run['tmp'] /
                           f'constant_{cls}.pth', cls)
    out = _ade._run([
        TEST, probe_run['cfg'], ckpt, '--work-dir', probe_run['tmp'] / 'test'
    ], probe_run['tmp'])
    match = re.search(r'mIoU: (\d+\.\d+)', out)
    assert match, out[-4000:]
    assert float(match.group(1)) == pytest.approx(want, abs=0.006), (
        cls, present, counts)
    # the per-class table: c's IoU, 0 for the other classes present
    name = _ade._META['classes'][cls]
    row = re.search(rf'\|\s*{name}\s*\|\s*([\d.]+)\s*\|', out)
    assert row, out[-4000:]
    assert float(row.group(1)) == pytest.approx(100 * iou, abs=0.006)


def test_probe_backbone_loads_a_standard_dino_vit(tmp_path: Path) -> None:
    """A ViT with its own [CLS] token and final norm (standard DINO), saved
    at 32 px, loads into the probe backbone at 64 px: [CLS] token and
    position, final norm and blocks as stored, the patch table resized."""
    from selfpatch_mm.models.backbones import (FrozenSelfPatchViT,
                                               SelfPatchViT)
    arch = dict(embed_dims=32, num_layers=4, num_heads=2,
                feedforward_channels=64)
    common = dict(arch=arch, patch_size=8, with_cls_token=True,
                  final_norm=True)
    torch.manual_seed(0)
    src = SelfPatchViT(img_size=32, out_type='cls_token', **common)
    src.init_weights()
    path = tmp_path / 'dino.pth'
    torch.save({'state_dict': {f'teacher.backbone.{k}': v
                               for k, v in src.state_dict().items()}}, path)
    probe = FrozenSelfPatchViT(
        img_size=64, out_indices=(3, ),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)), **common)
    probe.init_weights()
    got, want = probe.state_dict(), src.state_dict()
    for key in ('cls_token', 'ln1.weight', 'layers.3.attn.qkv.weight'):
        assert torch.equal(got[key], want[key]), key
    assert torch.equal(got['pos_embed'][:, :1], want['pos_embed'][:, :1])
    assert got['pos_embed'].shape == (1, 1 + 64, 32)
    assert not any(p.requires_grad for p in probe.parameters())
    out = probe(torch.randn(1, 3, 64, 64))
    assert len(out) == 1 and out[0].shape == (1, 32, 8, 8)
