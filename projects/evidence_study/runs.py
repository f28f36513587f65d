# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Pretraining arms of the study, run through ``tools/train.py``.

Every arm starts from one of the package's pretraining configs and gets the
same shrink (backbone, crops, batch, optimizer, schedule) from
:class:`PretrainSettings`, so the arms differ only in what their config
says about the method. The generated child config is a plain dump that
``tools/train.py`` runs as any other config.
"""
import glob
import json
import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

from selfpatch_mm.apis.installed import config_path, mim_root
from selfpatch_mm.apis.installed import run_tool as _run_tool

__all__ = [
    'PretrainSettings', 'Arm', 'default_arms', 'make_pretrain_config',
    'run_pretraining', 'run_tool', 'loop_seconds', 'final_health',
    'save_random_init'
]


@dataclass
class PretrainSettings:
    """The shrink every arm gets (same backbone, crops, batch, steps).

    Attributes:
        embed_dims (int): ViT width.
        num_layers (int): ViT depth.
        num_heads (int): Attention heads.
        patch_size (int): Patch size.
        global_crop (int): Global crop size (also the stored pos-embed grid).
        local_crop (int): Local crop size.
        num_local_crops (int): Local crops per image.
        batch_size (int): Images per step.
        epochs (int): Passes over the training scenes (drop_last, so every
            arm makes the same number of optimizer steps).
        lr (float): AdamW peak learning rate (no auto scaling).
        warmup_epochs (int): Linear warm-up.
        out_channels (int): DINO head prototypes.
        patch_out_channels (int): SelfPatch patch-head prototypes.
        teacher_momentum (float): Starting EMA momentum (cosine to 1).
    """
    embed_dims: int = 64
    num_layers: int = 4
    num_heads: int = 2
    patch_size: int = 8
    global_crop: int = 48
    local_crop: int = 24
    num_local_crops: int = 2
    batch_size: int = 32
    epochs: int = 24
    lr: float = 5e-4
    warmup_epochs: int = 2
    out_channels: int = 256
    patch_out_channels: int = 128
    teacher_momentum: float = 0.99


@dataclass
class Arm:
    """One row of the study.

    Attributes:
        name (str): Row name.
        config (str | None): Pretraining config; None for random init.
        equal_wall_of (str, optional): Gets as many epochs as fit in the
            wall time this arm's run took (``name`` of the SelfPatch arm);
            ``steps_of`` names the arm whose per-epoch time is used.
        steps_of (str, optional): See ``equal_wall_of``.
    """
    name: str
    config: Optional[str]
    equal_wall_of: Optional[str] = None
    steps_of: Optional[str] = None


def _first(patterns: List[str]) -> Optional[str]:
    for pattern in patterns:
        found = sorted(
            glob.glob(osp.join(mim_root(), 'configs', 'selfpatch', pattern)))
        if found:
            return found[0]
    return None


def default_arms(
        equal_wall_base: Optional[Union[str, Sequence[str]]] = None
) -> List[Arm]:
    """SelfPatch, DINO with its own [CLS] token (when its config exists),
    the no-patch-loss ablation, DINO arm(s) with SelfPatch's wall time, and
    random init.

    Args:
        equal_wall_base (str | Sequence[str], optional): The DINO arm(s)
            that get SelfPatch's wall time: ``'dino'`` (default when its
            config exists) and/or ``'dino_no_patch_loss'``.
    """
    selfpatch = config_path(
        'selfpatch/selfpatch_vit-small-p16_8xb128-coslr-300e_in1k.py')
    ablation = _first(['*no-patch-loss*.py',
                       'dino_vit-small-p16_8xb128-coslr-300e_in1k.py'])
    # DINO with its own [CLS] token (DINOSelfSupervisor)
    dino_cls = _first(['dino*cls*.py', 'dino_vit*.py'])
    arms = [Arm('selfpatch', selfpatch)]
    if dino_cls:
        arms.append(Arm('dino', dino_cls))
    arms.append(Arm('dino_no_patch_loss', ablation))
    bases = equal_wall_base or ('dino' if dino_cls else 'dino_no_patch_loss')
    known = {a.name: a for a in arms}
    for base in [bases] if isinstance(bases, str) else list(bases):
        if base not in known:
            raise ValueError(f'No arm {base!r} for the equal-wall-clock '
                             f'run; arms: {list(known)}.')
        arms.append(Arm(f'{base}_equal_wall', known[base].config,
                        equal_wall_of='selfpatch', steps_of=base))
    arms.append(Arm('random_init', None))
    return arms


def _shrink_head(head: dict, dims: int, out: int) -> None:
    head.update(in_channels=dims, out_channels=out,
                hidden_channels=max(4 * dims, 128),
                bottleneck_channels=max(dims // 2, 32))
    if isinstance(head.get('loss'), dict) and 'out_channels' in head.loss:
        head.loss.out_channels = out


def make_pretrain_config(base: str, path: str, s: PretrainSettings,
                         data_root: str, seed: int, epochs: int) -> str:
    """Write the shrunk child config of ``base`` to ``path``."""
    from mmengine.config import Config, ConfigDict
    cfg = Config.fromfile(base)
    m = cfg.model
    m.backbone.arch = dict(
        embed_dims=s.embed_dims, num_layers=s.num_layers,
        num_heads=s.num_heads, feedforward_channels=4 * s.embed_dims)
    m.backbone.update(img_size=s.global_crop, patch_size=s.patch_size)
    if m.get('neck'):
        m.neck.in_channels = s.embed_dims
        if 'num_heads' in m.neck:
            m.neck.num_heads = s.num_heads
    _shrink_head(m.head, s.embed_dims, s.out_channels)
    if m.get('patch_head'):
        _shrink_head(m.patch_head, s.embed_dims, s.patch_out_channels)
    loader = cfg.train_dataloader
    loader.update(batch_size=s.batch_size, num_workers=0, drop_last=True,
                  persistent_workers=False, pin_memory=False,
                  prefetch_factor=None)
    loader.dataset.data_root = data_root
    for t in loader.dataset.pipeline:
        if t.get('type') == 'DINOMultiCrop':
            # the same crops for every arm (SelfPatch's scales)
            t.update(global_crop_size=s.global_crop,
                     local_crop_size=s.local_crop,
                     num_local_crops=s.num_local_crops,
                     global_crops_scale=(0.25, 1.0),
                     local_crops_scale=(0.05, 0.25))
    cfg.train_cfg = ConfigDict(type='EpochBasedTrainLoop', max_epochs=epochs)
    warm = min(s.warmup_epochs, max(epochs - 1, 0))
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
             end=max(warm, 1), convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', T_max=max(epochs - warm, 1),
             eta_min=1e-6, by_epoch=True, begin=warm, end=epochs,
             convert_to_iter_based=True),
        dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
             eta_min_ratio=10.0, T_max=epochs, by_epoch=True, begin=0,
             end=epochs, convert_to_iter_based=True),
    ]
    cfg.optim_wrapper.optimizer.lr = s.lr
    cfg.auto_scale_lr = dict(enable=False, base_batch_size=256)
    for hook in cfg.get('custom_hooks', []):
        if hook.get('type') == 'TeacherEMAHook':
            hook.momentum = s.teacher_momentum
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=20)
    cfg.default_hooks.checkpoint.update(interval=epochs, max_keep_ckpts=1)
    cfg.randomness = dict(seed=seed, deterministic=False)
    os.makedirs(osp.dirname(path), exist_ok=True)
    cfg.dump(path)
    return path


def run_tool(tool: str, args: List[str], log: str,
             threads: Optional[int] = 1) -> float:
    """Run a packaged tool (``'train.py'``) with
    :func:`selfpatch_mm.apis.installed.run_tool`, its output to ``log``;
    one thread by default (these models are tiny). Returns the wall time
    in seconds."""
    return _run_tool(tool, args, log=log, threads=threads).wall_s


def loop_seconds(log: str) -> Optional[float]:
    """Seconds of the training loop itself (first to last log line after
    the Runner is built), without the interpreter and model start-up that
    every arm pays alike."""
    stamp = re.compile(r'^(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) - mmengine')
    times, started = [], False
    with open(log) as f:
        for line in f:
            started = started or 'Checkpoints will be saved to' in line
            hit = stamp.match(line)
            if started and hit:
                d, h, mi, sec = (int(x) for x in hit.groups()[1:])
                times.append(((d * 24 + h) * 60 + mi) * 60 + sec)
    return float(times[-1] - times[0]) if len(times) > 1 else None


def final_health(work_dir: str) -> Dict[str, float]:
    """The last logged value of every health figure of a training run.

    Args:
        work_dir (str): A ``tools/train.py`` work dir.

    Returns:
        dict: ``health/<head>_<figure>`` to the value of the newest
        ``*/vis_data/scalars.json`` line that has it (the logger's running
        mean over its window); empty without figures.
    """
    found: Dict[str, float] = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                row = json.loads(line) if line.strip() else {}
                found.update({k: float(v) for k, v in row.items()
                              if k.startswith('health/')})
    return found


def run_pretraining(config: str, work_dir: str, epochs: int,
                    threads: Optional[int] = 1) -> Dict[str, object]:
    """``tools/train.py config --work-dir work_dir``; skipped when its
    ``pretrain.json`` exists (resumable study).

    Returns:
        dict: ``checkpoint``, ``wall_s`` (the whole tool), ``epochs``,
        ``health`` (:func:`final_health`).
    """
    record = osp.join(work_dir, 'pretrain.json')
    if osp.isfile(record):
        with open(record) as f:
            return json.load(f)
    wall = run_tool('train.py', [config, '--work-dir', work_dir],
                    osp.join(work_dir, 'train.log'), threads)
    info = dict(checkpoint=osp.join(work_dir, f'epoch_{epochs}.pth'),
                wall_s=wall, train_s=loop_seconds(
                    osp.join(work_dir, 'train.log')),
                epochs=epochs, config=config,
                health=final_health(work_dir))
    if not osp.isfile(info['checkpoint']):
        raise RuntimeError(f'{info["checkpoint"]} was not written.')
    with open(record, 'w') as f:
        json.dump(info, f)
    return info


def save_random_init(config: str, path: str, seed: int) -> str:
    """A ``tools/train.py``-style checkpoint of the untrained model of
    ``config`` (student and teacher), for the random-init row."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import selfpatch_mm.models  # noqa: F401  (registers the models)
    if osp.isfile(path):
        return path
    cfg = Config.fromfile(config)
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model.init_weights()  # also starts the teacher from the student
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save({'meta': dict(epoch=0, iter=0),
                'state_dict': model.state_dict()}, path)
    return path
