"""End to end: a pretraining checkpoint -> Mask R-CNN fine-tuning with the
COCO transfer config (tools/train.py) -> COCO box/mask AP (tools/test.py),
on a COCO-format dataset generated here."""
import glob
import json
import os
import os.path as osp
import re
import sys

import numpy as np
import pytest
import torch
from helpers import run_command, tool_env
from mmengine.config import Config
from mmpretrain.registry import MODELS
from PIL import Image, ImageDraw

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/selfpatch/benchmarks/'
                  'mask-rcnn_vit-small-p16_fpn_1x_coco.py')
DEMO_CFG = osp.join(REPO, 'configs/selfpatch/selfpatch_vit-tiny-p8_1xb8-2e_demo.py')
CLASSES = ('square', 'triangle')


def make_coco(root, split, n_images, rng):
    """Images with squares and triangles, instances json with polygons."""
    os.makedirs(osp.join(root, split), exist_ok=True)
    images, anns = [], []
    for i in range(n_images):
        w, h = 128, 96
        img = Image.fromarray(rng.integers(0, 80, (h, w, 3), np.uint8))
        draw = ImageDraw.Draw(img)
        for j, cat in enumerate((1, 2)):
            x, y, s = 10 + 60 * j + int(rng.integers(0, 10)), \
                15 + int(rng.integers(0, 30)), 30 + int(rng.integers(0, 10))
            poly = ([x, y, x + s, y, x + s, y + s, x, y + s] if cat == 1 else
                    [x, y + s, x + s, y + s, x + s // 2, y])
            draw.polygon(poly, fill=(220, 60, 60) if cat == 1 else
                         (60, 220, 60))
            xs, ys = poly[0::2], poly[1::2]
            anns.append(dict(
                id=len(anns) + 1, image_id=i + 1, category_id=cat,
                segmentation=[[float(v) for v in poly]], iscrowd=0,
                area=float(s * s if cat == 1 else s * s / 2),
                bbox=[float(min(xs)), float(min(ys)),
                      float(max(xs) - min(xs)), float(max(ys) - min(ys))]))
        name = f'{i:012d}.jpg'
        img.save(osp.join(root, split, name))
        images.append(dict(id=i + 1, file_name=name, width=w, height=h))
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    with open(osp.join(root, f'annotations/instances_{split}.json'),
              'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=[
            dict(id=k + 1, name=c, supercategory='shape')
            for k, c in enumerate(CLASSES)]), f)


TINY_CFG = '''
_base_ = {config!r}
data_root = {root!r}
metainfo = dict(classes={classes!r})
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=96, num_layers=4, num_heads=3,
                  feedforward_channels=384),
        img_size=64, patch_size=8, out_indices=(0, 1, 2, 3),
        init_cfg=dict(checkpoint={ckpt!r})),
    neck=dict(in_channels=[96] * 4),
    roi_head=dict(bbox_head=dict(num_classes=2), mask_head=dict(num_classes=2)),
    # fewer RoIs keep the heads cheap on the CPU
    train_cfg=dict(
        rpn=dict(sampler=dict(num=64)),
        rpn_proposal=dict(nms_pre=200, max_per_img=100),
        rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(
        rpn=dict(nms_pre=200, max_per_img=100),
        rcnn=dict(max_per_img=20)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=[(96, 128), (128, 128)],
              keep_ratio=True)],
        [dict(type='RandomChoiceResize', scales=[(112, 128)], keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range',
              crop_size=(64, 96), allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=[(96, 128)], keep_ratio=True)]
    ]),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 pipeline=train_pipeline,
                 filter_cfg=dict(filter_empty_gt=True, min_size=8)))
test_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 pipeline=test_pipeline))
test_evaluator = dict(
    ann_file=data_root + 'annotations/instances_val2017.json')
# no validation while training: tools/test.py evaluates
val_dataloader = val_evaluator = val_cfg = None
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
'''


@pytest.fixture(scope='module')
def tiny_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('coco')
    rng = np.random.default_rng(0)
    root = str(tmp / 'coco') + '/'
    make_coco(root, 'train2017', 4, rng)
    make_coco(root, 'val2017', 2, rng)
    # a pretraining checkpoint of the demo model (what tools/train.py on
    # the demo config writes: an mmengine dict with student + teacher)
    model = MODELS.build(Config.fromfile(DEMO_CFG).model)
    model.init_weights()
    ckpt = str(tmp / 'selfpatch_demo.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1}}, ckpt)
    cfg = str(tmp / 'mask-rcnn_tiny_coco.py')
    with open(cfg, 'w') as f:
        f.write(TINY_CFG.format(config=CONFIG, root=root, ckpt=ckpt,
                                classes=CLASSES))
    return tmp, cfg


def run(args, env=None):
    return run_command(args, env=env or tool_env(threads=None)).stdout


@pytest.mark.slow
def test_train_then_test_reports_box_and_mask_ap(tiny_setup):
    tmp, cfg = tiny_setup
    work = str(tmp / 'work')
    out = run([sys.executable, 'tools/train.py', cfg, '--work-dir', work,
               '--cfg-options', 'model.backbone.norm_cfg.type=BN'])
    assert 'SelfPatchDenseViT: loaded 51/51 ViT tensors' in out
    assert 'teacher.backbone.*' in out
    assert 'Epoch(train) [1][2/2]' in out
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(ckpt)

    pictures = tmp / 'pictures'
    out = run([sys.executable, 'tools/test.py', cfg, ckpt, '--work-dir',
               str(tmp / 'test'), '--show-dir', str(pictures)])
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert key in out
    # --show-dir: mmdet's DetVisualizationHook draws each val image
    val_images = sorted(os.listdir(osp.join(tmp, 'coco', 'val2017')))
    assert sorted(os.listdir(pictures)) == val_images
    metrics = glob.glob(str(tmp / 'test/*/*.json'))
    assert metrics, 'tools/test.py wrote no metrics json'
    with open(metrics[0]) as f:
        result = json.load(f)
    # the json holds the AP the log printed (the known answer of the
    # evaluator itself: test_config_evaluator_scores_perfect_predictions_one)
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        printed = re.search(rf'{key}: (\d+\.\d+)', out)
        assert printed, out[-3000:]
        assert float(printed.group(1)) == pytest.approx(result[key],
                                                        abs=1e-4)


@pytest.mark.slow
def test_dist_train_sh_accepts_config(tiny_setup):
    """torchrun with 1 CPU process (gloo); SyncBN falls back to BN."""
    tmp, cfg = tiny_setup
    env = tool_env(threads=None, PORT='29577')
    out = run(['bash', 'tools/dist_train.sh', cfg, '1', '--work-dir',
               str(tmp / 'dist'), '--cfg-options', 'train_cfg.max_epochs=1'],
              env=env)
    assert 'using BN instead of SyncBN' in out
    assert osp.isfile(str(tmp / 'dist/epoch_1.pth'))


def test_config_evaluator_scores_perfect_predictions_one(tiny_setup):
    """Known answer: the config's test evaluator (bbox + segm CocoMetric)
    gives AP 1 when the predictions are the ground truth."""
    from mmdet.registry import METRICS
    from mmengine.registry import init_default_scope
    from pycocotools.coco import COCO
    _, cfg_path = tiny_setup
    cfg = Config.fromfile(cfg_path)
    init_default_scope('mmdet')
    metric = METRICS.build(cfg.test_evaluator)
    metric.dataset_meta = dict(classes=CLASSES)
    coco = COCO(cfg.test_evaluator.ann_file)
    samples = []
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        boxes = [[x, y, x + w, y + h] for x, y, w, h in
                 (a['bbox'] for a in anns)]
        samples.append(dict(
            img_id=img_id, ori_shape=(info['height'], info['width']),
            pred_instances=dict(
                bboxes=torch.tensor(boxes),
                scores=torch.ones(len(anns)),
                labels=torch.tensor([a['category_id'] - 1 for a in anns]),
                masks=torch.from_numpy(np.stack(
                    [coco.annToMask(a) for a in anns]).astype(bool)))))
    metric.process({}, samples)
    result = metric.evaluate(len(samples))
    assert result['coco/bbox_mAP'] == pytest.approx(1.0)
    assert result['coco/segm_mAP'] == pytest.approx(1.0)


def test_8heads_variant_is_the_official_backbone_over_6head_weights(
        tmp_path):
    """The 8-head child config (the official detection config's
    ``num_heads=8``, alinlab/SelfPatch 81aef14) differs from the default
    only in the heads, and loads a 6-head ViT-S pretraining file fully: the
    same qkv tensors, split into 8 heads of 48 channels."""
    import selfpatch_mm.models  # noqa: F401
    variant = Config.fromfile(CONFIG.replace('-p16_', '-p16-8heads_'))
    default = Config.fromfile(CONFIG)
    assert variant.model.backbone.arch == dict(
        embed_dims=384, num_layers=12, num_heads=8, feedforward_channels=1536)
    v, d = variant.to_dict(), default.to_dict()
    v['model']['backbone'].pop('arch')
    d['model']['backbone'].pop('arch')
    assert v['model'] == d['model']
    six = MODELS.build(dict(type='SelfPatchViT', arch='deit-small'))
    path = tmp_path / 'vit6.pth'
    torch.save({'state_dict': {f'teacher.backbone.{k}': t for k, t in
                               six.state_dict().items()}}, path)
    cfg = dict(variant.model.backbone, norm_cfg=dict(type='BN'),
               init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    cfg['type'] = 'SelfPatchDenseViT'
    model = MODELS.build(cfg)
    model.init_weights()
    assert model.layers[0].attn.num_heads == 8
    assert model.layers[0].attn.head_dims == 48
    torch.testing.assert_close(model.layers[5].attn.qkv.weight,
                               six.layers[5].attn.qkv.weight)
