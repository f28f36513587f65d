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


DINOV2_CFG = PROBE_CFG.with_name(
    'linear_vit-small-p16-dinov2-protocol_8xb2-40k_ade20k-512x512.py')


def _demo_checkpoint_with_norm(path: Path) -> tuple:
    """The demo checkpoint with a distinctive teacher ``neck.norm``."""
    ckpt = _demo_checkpoint(path)
    state = torch.load(ckpt, weights_only=False)
    g = torch.Generator().manual_seed(3)
    weight = 1 + torch.rand(96, generator=g)
    bias = torch.randn(96, generator=g)
    state['state_dict']['teacher.neck.norm.weight'] = weight
    state['state_dict']['teacher.neck.norm.bias'] = bias
    torch.save(state, ckpt)
    return ckpt, weight, bias


def _frozen(ckpt: Path, **kwargs):
    from selfpatch_mm.models import FrozenSelfPatchViT
    from helpers import DEMO_VIT_ARCH
    model = FrozenSelfPatchViT(
        arch=DEMO_VIT_ARCH, img_size=64, patch_size=8, out_indices=(1, 3),
        init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)), **kwargs)
    model.init_weights()
    return model


def test_out_norm_applies_the_final_norm_to_every_probed_layer(
        tmp_path: Path) -> None:
    """DINOv2's get_intermediate_layers(norm=True): LayerNorm(eps 1e-6) with
    the checkpoint's final norm (SelfPatch: the aggregation module's) on
    each probed layer's tokens; the default gives the raw tokens."""
    ckpt, weight, bias = _demo_checkpoint_with_norm(tmp_path / 'pre.pth')
    raw = _frozen(ckpt)
    normed = _frozen(ckpt, out_norm=True)
    x = torch.randn(2, 3, 64, 64)
    ref = raw(x)
    outs = normed(x)
    assert not any(p.requires_grad for p in normed.parameters())
    for r, o in zip(ref, outs):
        expected = torch.nn.functional.layer_norm(
            r.permute(0, 2, 3, 1), (96, ), weight, bias,
            eps=1e-6).permute(0, 3, 1, 2)
        torch.testing.assert_close(o, expected)
    # a file without the aggregation module's norm: a clear error
    backbone_only = tmp_path / 'backbone.pth'
    state = torch.load(ckpt, weights_only=False)['state_dict']
    torch.save({k: v for k, v in state.items()
                if k.startswith('teacher.backbone.')}, backbone_only)
    with pytest.raises(ValueError, match=r'teacher\.neck\.norm\.weight'):
        _frozen(backbone_only, out_norm=True)


def test_dinov2_protocol_config_changes_only_norm_and_slide_test() -> None:
    """The defaults stay as they were; the variant adds the final norm and
    DINOv2's slide test (512 crops, stride 341), nothing else."""
    from mmengine.config import Config
    base = Config.fromfile(str(PROBE_CFG)).to_dict()
    variant = Config.fromfile(str(DINOV2_CFG)).to_dict()
    assert 'out_norm' not in base['model']['backbone']
    assert base['model']['test_cfg'] == dict(mode='whole')
    assert variant['model']['backbone'].pop('out_norm') is True
    assert variant['model'].pop('test_cfg') == dict(
        mode='slide', crop_size=(512, 512), stride=(341, 341))
    base['model'].pop('test_cfg')
    assert variant == base


def test_slide_test_is_whole_image_test_when_one_crop_covers_it() -> None:
    """Known answer of mmseg's slide inference on the probe model: a crop
    that covers the image gives the whole-image logits; 48-pixel crops at
    stride 32 over a 64x96 image give logits of the same shape (and other
    values: each crop sees less context)."""
    from mmengine.config import Config, ConfigDict
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    import selfpatch_mm.models  # noqa: F401
    import selfpatch_mm.models.seg_heads  # noqa: F401
    cfg = Config.fromfile(str(DINOV2_CFG))
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.out_norm = False  # no checkpoint to take it from
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
    x = torch.randn(1, 3, 64, 96)
    meta = [dict(img_shape=(64, 96), ori_shape=(64, 96),
                 pad_shape=(64, 96), padding_size=[0, 0, 0, 0])]
    with torch.no_grad():
        whole = model.whole_inference(x, meta)
        model.test_cfg = ConfigDict(mode='slide', crop_size=(64, 96),
                                    stride=(341, 341))
        one = model.slide_inference(x, meta)
        model.test_cfg = ConfigDict(mode='slide', crop_size=(48, 48),
                                    stride=(32, 32))
        tiled = model.slide_inference(x, meta)
    torch.testing.assert_close(one, whole)
    assert tiled.shape == whole.shape == (1, 150, 64, 96)
    assert not torch.allclose(tiled, whole)


@pytest.mark.slow
def test_dinov2_protocol_probe_trains_and_tests(tmp_path: Path) -> None:
    """Through tools/train.py and tools/test.py (slide test), from a
    pretraining checkpoint: the probed maps are normalised with its
    aggregation module's final norm, which the trained file keeps."""
    ade_root = _ade.make_ade20k_folder(tmp_path / 'ade')
    ckpt, weight, _ = _demo_checkpoint_with_norm(tmp_path / 'pre.pth')
    options = _ade.tiny_options(ade_root, PROBE_HEAD)
    options['model.test_cfg.crop_size'] = (48, 48)
    options['model.test_cfg.stride'] = (32, 32)
    cfg = derive_config(DINOV2_CFG, tmp_path / 'probe.py', options)
    _ade._run([
        TRAIN, cfg, '--work-dir', tmp_path / 'work', '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={ckpt}'
    ], tmp_path)
    trained = _state(tmp_path / 'work' / 'iter_4.pth')
    torch.testing.assert_close(trained['backbone.neck_norm.weight'], weight)
    out = _ade._run([
        TEST, cfg, tmp_path / 'work' / 'iter_4.pth', '--work-dir',
        tmp_path / 'test'
    ], tmp_path)
    assert re.search(r'mIoU: (\d+\.\d+)', out), out[-4000:]
