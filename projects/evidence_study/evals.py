# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Frozen evaluations of one pretrained checkpoint on held-out scenes.

- linear-probe mIoU: the frozen linear probe config
  (``configs/selfpatch/benchmarks/linear_*_ade20k*.py``), shrunk to the
  study's ViT and world, trained and validated by ``tools/train.py``;
- DAVIS J&F: label propagation on the held-out clips with
  :func:`~selfpatch_mm.evaluation.segment_davis` and the DAVIS metrics;
- weighted k-NN top-1 (:mod:`selfpatch_mm.evaluation.knn`) of the image
  feature (the aggregation module's [CLS] token when the model has one,
  else the mean patch token), held-out scenes against the training ones.
"""
import json
import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict, Optional

from selfpatch_mm.apis.installed import config_path

from .runs import PretrainSettings, run_tool

__all__ = [
    'ProbeSettings', 'PROBE_CONFIG', 'make_probe_config', 'probe_miou',
    'davis_jf', 'knn_top1', 'evaluate_checkpoint'
]

PROBE_CONFIG = 'selfpatch/benchmarks/' \
    'linear_vit-small-p16_8xb2-40k_ade20k-512x512.py'


@dataclass
class ProbeSettings:
    """Evaluation sizes.

    Attributes:
        iters (int): Linear-probe training iterations.
        batch_size (int): Probe images per iteration.
        lr (float): Probe AdamW learning rate.
        knn_k (int): Neighbours of the k-NN vote.
        davis_n_last_frames (int): Context frames of the propagation.
        davis_zoom (float): Propagation resolution over the clips' size.
            At the clips' own 64 px a patch-8 ViT sees an 8x8 grid, so
            coarse that every arm scored about 40 J&F. At 3x (192 px) the
            main object spans 6-10 patches, about what a DAVIS object of
            100-150 px spans at 480p for ViT-S/16. On the previous full
            run's checkpoints, both pretrained arms then beat random init on
            every seed of two clip draws; at 2x SelfPatch fell below it on
            one seed of the run's own clips (docs/evidence.md).
    """
    iters: int = 300
    batch_size: int = 16
    lr: float = 5e-3
    knn_k: int = 20
    davis_n_last_frames: int = 7
    davis_zoom: float = 3.0


def make_probe_config(path: str, checkpoint: str, world: dict,
                      s: PretrainSettings, p: ProbeSettings, seed: int,
                      vit: Optional[dict] = None) -> str:
    """Write the probe config, shrunk to the study, to ``path``; ``vit``
    holds backbone options of the pretraining config to keep
    (``with_cls_token``, ``final_norm``)."""
    from mmengine.config import Config
    cfg = Config.fromfile(config_path(PROBE_CONFIG))
    size = world['spec']['image_size']
    names = ['background'] + [c['name'] for c in world['classes']]
    n = len(names)
    m = cfg.model
    m.data_preprocessor.size = (size, size)
    m.data_preprocessor.test_cfg = dict(size_divisor=s.patch_size)
    m.backbone.arch = dict(
        embed_dims=s.embed_dims, num_layers=s.num_layers,
        num_heads=s.num_heads, feedforward_channels=4 * s.embed_dims)
    m.backbone.update(img_size=size, patch_size=s.patch_size,
                      out_indices=(s.num_layers - 1, ))
    m.backbone.init_cfg.checkpoint = checkpoint
    m.backbone.update(vit or {})
    m.decode_head.update(in_channels=[s.embed_dims], in_index=[0],
                         num_classes=n, norm_cfg=dict(type='BN'))
    check = dict(type='CheckSegLabels', num_classes=n)
    load = [dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', reduce_zero_label=True), check]
    meta = dict(classes=tuple(names),
                palette=[[(37 * i) % 256, (91 * i) % 256, (53 * i) % 256]
                         for i in range(n)])
    for loader, pipe in (
            (cfg.train_dataloader,
             load + [dict(type='RandomFlip', prob=0.5),
                     dict(type='PackSegInputs')]),
            (cfg.val_dataloader, load + [dict(type='PackSegInputs')])):
        loader.update(num_workers=0, persistent_workers=False)
        # our class names: ADE20KDataset would only take ADE20K's own
        loader.dataset.update(type='BaseSegDataset', img_suffix='.jpg',
                              seg_map_suffix='.png', reduce_zero_label=True,
                              data_root=world['ade'], metainfo=meta,
                              pipeline=pipe)
    cfg.train_dataloader.batch_size = p.batch_size
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_iters=p.iters, val_interval=p.iters)
    warm = max(p.iters // 10, 1)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
             end=warm),
        dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False,
             begin=warm, end=p.iters),
    ]
    cfg.optim_wrapper.optimizer.lr = p.lr
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=50)
    cfg.default_hooks.checkpoint.update(by_epoch=False, interval=p.iters,
                                        max_keep_ckpts=1)
    cfg.randomness = dict(seed=seed)
    cfg.dump(path)
    return path


def probe_miou(config: str, checkpoint: str, work_dir: str, world: dict,
               s: PretrainSettings, p: ProbeSettings, seed: int) -> float:
    """Train the frozen probe with ``tools/train.py``; its validation on the
    held-out scenes gives the mIoU (percent)."""
    from mmengine.config import Config
    vit = Config.fromfile(config).model.backbone
    vit = {k: vit[k] for k in ('with_cls_token', 'final_norm') if k in vit}
    cfg = make_probe_config(osp.join(work_dir, 'probe.py'), checkpoint,
                            world, s, p, seed, vit)
    log = osp.join(work_dir, 'probe.log')
    run_tool('train.py', [cfg, '--work-dir', osp.join(work_dir, 'probe')],
             log)
    with open(log) as f:
        found = re.findall(r'mIoU: (\d+(?:\.\d+)?)', f.read())
    if not found:
        raise RuntimeError(f'No mIoU in {log}.')
    return float(found[-1])


def davis_jf(config: str, checkpoint: str, world: dict, out_dir: str,
             p: ProbeSettings, s: PretrainSettings) -> float:
    """J&F-Mean (percent) of label propagation on the held-out clips."""
    from selfpatch_mm.evaluation.davis_metrics import (evaluate_davis,
                                                       summarize_davis)
    from selfpatch_mm.evaluation.davis_propagation import segment_davis
    davis = world['davis']
    with open(osp.join(davis, 'ImageSets', '2017', 'val.txt')) as f:
        seqs = [line.strip() for line in f if line.strip()]
    img_root = osp.join(davis, 'JPEGImages', '480p')
    ann_root = osp.join(davis, 'Annotations', '480p')
    size = int(round(world['spec']['image_size'] * p.davis_zoom))
    segment_davis(seqs, img_root, ann_root, out_dir,
                  (config, checkpoint, 'teacher', 'cpu'),
                  resolution=size,
                  n_last_frames=p.davis_n_last_frames,
                  size_mask_neighborhood=12, topk=5,
                  long_side_multiple=s.patch_size)
    summary = summarize_davis(evaluate_davis(ann_root, out_dir, seqs))
    return 100.0 * float(summary['J&F-Mean'])


def knn_top1(config: str, checkpoint: str, world: dict,
             p: ProbeSettings) -> float:
    """Weighted k-NN top-1 (percent) of held-out scenes' dominant class."""
    from mmpretrain.models import ClsDataPreprocessor

    from selfpatch_mm.evaluation.knn import (build_knn_dataloader,
                                             extract_features, knn_classify,
                                             knn_pipeline)
    from selfpatch_mm.evaluation.pretrained import load_pretrained_selfpatch
    model = load_pretrained_selfpatch(config, checkpoint, 'teacher', 'cpu')
    size = world['spec']['image_size']
    pipeline = knn_pipeline(size, size)
    pre = ClsDataPreprocessor(mean=model.mean.tolist(),
                              std=model.std.tolist(), to_rgb=model.to_rgb)

    def forward(x):
        out = model.backbone(x)
        if out[-1].dim() == 2:  # a backbone [CLS] token (standard DINO)
            return out[-1]
        if model.neck is None:
            return out[-1].flatten(2).mean(-1)
        return model.neck(out)[0]  # the aggregated [CLS] token

    feats = [
        extract_features(
            build_knn_dataloader(root, '', pipeline, 64, 0), pre, forward)
        for root in (world['knn_train'], world['knn_val'])
    ]
    top1, _ = knn_classify(feats[0][0], feats[0][1], feats[1][0],
                           feats[1][1], p.knn_k, 0.07,
                           len(world['classes']))
    return float(top1)


def feature_config(config: str, path: str) -> str:
    """``config`` with a backbone that outputs patch maps (a standard DINO
    ViT outputs its [CLS] token), for label propagation."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    if cfg.model.backbone.get('out_type', 'featmap') == 'featmap':
        return config
    cfg.model.backbone.out_type = 'featmap'
    cfg.dump(path)
    return path


def evaluate_checkpoint(config: str, checkpoint: str, run_dir: str,
                        world: dict, s: PretrainSettings, p: ProbeSettings,
                        seed: int) -> Dict[str, float]:
    """All three metrics; cached in ``run_dir/eval.json`` (resumable)."""
    record = osp.join(run_dir, 'eval.json')
    if osp.isfile(record):
        with open(record) as f:
            return json.load(f)
    os.makedirs(run_dir, exist_ok=True)
    result = dict(
        knn_top1=knn_top1(config, checkpoint, world, p),
        davis_jf=davis_jf(feature_config(
            config, osp.join(run_dir, 'features.py')), checkpoint, world,
                          osp.join(run_dir, 'davis'), p, s),
        probe_miou=probe_miou(config, checkpoint, run_dir, world, s, p,
                              seed))
    with open(record, 'w') as f:
        json.dump(result, f)
    return result
