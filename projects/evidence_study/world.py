# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""A deterministic, structured image world for the pretraining study.

Objects of several classes, each with its own shape and texture statistics
(outline, stripe/checker/dot/wave pattern, period, orientation, hue), lie on
textured grey-toned backgrounds. The world is written in the on-disk formats
the tools read:

- ``ade/``: the ADE20K layout (``images|annotations/training|validation``),
  png value 1 = background, ``2..K+1`` = object classes (``reduce_zero_label``
  gives labels ``0..K``);
- ``knn/{train,val}/<class>/``: the same scenes as ImageNet-style folders,
  labelled by their dominant object;
- ``davis/``: short clips of moving, slightly deforming objects in the
  DAVIS-2017 layout (``JPEGImages/480p/<seq>/00000.jpg``, indexed
  ``Annotations/480p/<seq>/00000.png``, ``ImageSets/2017/val.txt``).

Colour does not tell the classes apart (every instance draws its own
hues), so a feature must see shape and texture, i.e. patch structure, to do
well. The clips' light drifts from frame to frame.
"""
import io
import json
import os
import os.path as osp
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

import cv2
import numpy as np
from PIL import Image

from selfpatch_mm.evaluation import read_palette, write_indexed_png

__all__ = ['WorldSpec', 'generate_world', 'render_scene']

SHAPES = ('ellipse', 'rect', 'triangle', 'star', 'ring', 'cross', 'diamond',
          'blob')
TEXTURES = ('stripes', 'checker', 'dots', 'waves')


@dataclass
class WorldSpec:
    """Sizes of the world.

    Attributes:
        seed (int): Everything is drawn from it.
        num_classes (int): Object classes (background excluded).
        image_size (int): Square scene size in pixels.
        num_train (int): Training scenes (pretraining, probe, k-NN memory).
        num_val (int): Held-out scenes (probe mIoU, k-NN queries). With
            320, k-NN top-1 moved by 2-4 points from one draw of scenes to
            another (binomial noise of about 2 points at 20%).
        num_clips (int): DAVIS-style sequences (held out). With 8, J&F
            moved by about 5 points from one draw of clips to another.
        clip_len (int): Frames per sequence.
        class_hue (bool): Tie each class to a hue (jittered). False (the
            default) draws every instance's hues uniformly, so that colour
            carries no class information and an untrained network, whose
            features are mostly colour statistics, cannot win on it.
        main_scale (tuple): Size range of each scene's main object (drawn
            in front), as a fraction of the scene; it is usually the
            dominant object that labels the scene for k-NN.
        other_scale (tuple): Size range of the 0-2 distractor objects.
        clip_light (float): Per-frame illumination change of the clips
            (gain and per-channel colour cast, relative amplitude), like the
            colour jitter the pretraining augmentations teach invariance to.
        background_saturation (float): Saturation of the background's two
            tones, relative to 0.1-0.6 (1.0, the worlds before 0.0: every
            scene's own two hues). With coloured backgrounds every arm's
            image feature knew the background's hue (k-NN top-1 on six hue
            bins: 66% random init, 73% DINO; majority 18%) and not the
            object's class (chance): the background colour, shared by all
            views of a scene, was the cue DINO matched views by. Grey tones
            (0.0) take that cue away; docs/evidence.md has the measured
            effect.
    """
    seed: int = 0
    num_classes: int = 6
    image_size: int = 64
    num_train: int = 600
    num_val: int = 960
    num_clips: int = 48
    clip_len: int = 10
    class_hue: bool = False
    main_scale: Tuple[float, float] = (0.26, 0.4)
    other_scale: Tuple[float, float] = (0.14, 0.24)
    clip_light: float = 0.25
    background_saturation: float = 0.0


def _class_table(rng: np.random.Generator, k: int) -> List[dict]:
    shapes = rng.permutation(len(SHAPES))
    return [
        dict(
            name=f'{SHAPES[shapes[c % len(SHAPES)]]}_{c}',
            shape=SHAPES[shapes[c % len(SHAPES)]],
            texture=TEXTURES[c % len(TEXTURES)],
            period=float(rng.uniform(3.0, 7.0)),
            angle=float(rng.uniform(0, np.pi)),
            hue=float(rng.uniform(0, 1)),
        ) for c in range(k)
    ]


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """One RGB colour (0-255) of an HSV triple in [0, 1]."""
    px = np.uint8([[[int(h % 1.0 * 180) % 180, int(s * 255), int(v * 255)]]])
    return cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray,
                wobble: float) -> np.ndarray:
    """Inside test in the object's unit frame; ``wobble`` deforms."""
    r = np.sqrt(u**2 + v**2)
    t = np.arctan2(v, u)
    if shape == 'ellipse':
        return r < 1
    if shape == 'rect':
        return (np.abs(u) < 1) & (np.abs(v) < 0.65)
    if shape == 'triangle':
        return (v > -0.7) & (v < 1.2 - 1.9 * np.abs(u))
    if shape == 'star':
        return r < 0.55 + 0.4 * np.cos(5 * t + wobble)
    if shape == 'ring':
        return (r < 1) & (r > 0.55)
    if shape == 'cross':
        return ((np.abs(u) < 0.33) | (np.abs(v) < 0.33)) & \
            (np.abs(u) < 1) & (np.abs(v) < 1)
    if shape == 'diamond':
        return np.abs(u) + np.abs(v) < 1
    return r < 0.8 + 0.2 * np.sin(3 * t + wobble)  # blob


def _texture(kind: str, x: np.ndarray, y: np.ndarray, period: float,
             phase: float) -> np.ndarray:
    """Pattern in [0, 1] over object-frame pixel coordinates."""
    w = 2 * np.pi / period
    if kind == 'stripes':
        return (np.sin(w * x + phase) > 0).astype(np.float32)
    if kind == 'checker':
        return ((np.sin(w * x + phase) > 0) ^
                (np.sin(w * y + phase) > 0)).astype(np.float32)
    if kind == 'dots':
        return ((np.sin(w * x + phase) * np.sin(w * y + phase)) >
                0.5).astype(np.float32)
    return (np.sin(w * x + 2.0 * np.sin(w * 0.5 * y) + phase) >
            0).astype(np.float32)  # waves


def _background(rng: np.random.Generator, size: int,
                saturation: float) -> np.ndarray:
    """Smooth two-tone noise plus faint random stripes; ``saturation``
    scales the tones' saturation (0: grey tones)."""
    low = rng.random((5, 5)).astype(np.float32)
    low = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    c1 = _hsv(rng.random(), saturation * rng.uniform(0.1, 0.6),
              rng.uniform(0.3, 0.9))
    c2 = _hsv(rng.random(), saturation * rng.uniform(0.1, 0.6),
              rng.uniform(0.3, 0.9))
    img = low[..., None] * c1 + (1 - low[..., None]) * c2
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    a = rng.uniform(0, np.pi)
    stripes = np.sin((xx * np.cos(a) + yy * np.sin(a)) *
                     2 * np.pi / rng.uniform(6, 14))
    return img + 18.0 * stripes[..., None]


def _draw(img: np.ndarray, seg: np.ndarray, value: int, cls: dict,
          inst: dict) -> None:
    """Paint one object instance in place (later objects occlude)."""
    size = img.shape[0]
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    dx, dy = xx - inst['cx'], yy - inst['cy']
    c, s = np.cos(inst['rot']), np.sin(inst['rot'])
    x, y = c * dx + s * dy, -s * dx + c * dy  # object frame, pixels
    u, v = x / (inst['scale'] * inst['aspect']), y / inst['scale']
    mask = _shape_mask(cls['shape'], u, v, inst['wobble'])
    a = cls['angle'] + inst['angle_jitter']
    tx, ty = np.cos(a) * x + np.sin(a) * y, -np.sin(a) * x + np.cos(a) * y
    pattern = _texture(cls['texture'], tx, ty, cls['period'] * inst['pscale'],
                       inst['phase'])[..., None]
    col = pattern * inst['c1'] + (1 - pattern) * inst['c2']
    img[mask] = col[mask]
    seg[mask] = value


def _instance(rng: np.random.Generator, cls: dict, size: int,
              scale_range: Tuple[float, float],
              class_hue: bool) -> dict:
    scale = rng.uniform(*scale_range) * size
    hue = cls['hue'] + rng.normal(0, 0.12) if class_hue else rng.random()
    return dict(
        cx=rng.uniform(0.15, 0.85) * size,
        cy=rng.uniform(0.15, 0.85) * size,
        scale=scale,
        aspect=rng.uniform(0.8, 1.25),
        rot=rng.uniform(0, 2 * np.pi),
        wobble=rng.uniform(0, 2 * np.pi),
        angle_jitter=rng.normal(0, 0.2),
        pscale=rng.uniform(0.85, 1.15),
        phase=rng.uniform(0, 2 * np.pi),
        c1=_hsv(hue, rng.uniform(0.5, 1.0), rng.uniform(0.7, 1.0)),
        c2=_hsv(hue + 0.5 + rng.normal(0, 0.12), rng.uniform(0.3, 0.9),
                rng.uniform(0.1, 0.5)))


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = img + rng.normal(0, 4.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _objects(rng: np.random.Generator, classes: List[dict],
             spec: 'WorldSpec') -> List[Tuple[int, dict]]:
    """0-2 small distractors, then the main object in front of them."""
    n = int(rng.integers(1, 4))
    objs = []
    for i, c in enumerate(rng.integers(0, len(classes), n)):
        scale = spec.main_scale if i == n - 1 else spec.other_scale
        objs.append((int(c), _instance(rng, classes[c], spec.image_size,
                                       scale, spec.class_hue)))
    return objs


def render_scene(rng: np.random.Generator, classes: List[dict],
                 spec: 'WorldSpec') -> Tuple[np.ndarray, np.ndarray, int]:
    """One scene: RGB image, class map (0 = background, c + 1 = class c)
    and the dominant class (most pixels)."""
    size = spec.image_size
    img = _background(rng, size, spec.background_saturation)
    seg = np.zeros((size, size), np.uint8)
    for c, inst in _objects(rng, classes, spec):
        _draw(img, seg, c + 1, classes[c], inst)
    counts = np.bincount(seg.ravel(), minlength=len(classes) + 1)[1:]
    # the main object is drawn last, so nothing hides it
    return _finish(img, rng), seg, int(counts.argmax())


def _write_clip(rng: np.random.Generator, classes: List[dict],
                spec: 'WorldSpec', img_dir: str, ann_dir: str,
                palette: List[int]) -> None:
    """Objects drift, turn and breathe under changing light; masks follow
    them frame by frame."""
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    size = spec.image_size
    bg = _background(rng, size, spec.background_saturation)
    objs = []
    for c, inst in _objects(rng, classes, spec):
        motion = dict(
            vx=rng.uniform(-1.5, 1.5), vy=rng.uniform(-1.5, 1.5),
            vr=rng.uniform(-0.08, 0.08), breathe=rng.uniform(0.02, 0.06),
            vw=rng.uniform(0.1, 0.3))
        objs.append((c, inst, motion))
    # a smooth random walk of gain and colour cast over the frames
    light = np.cumsum(rng.normal(0, spec.clip_light / 2, (spec.clip_len, 4)),
                      axis=0)
    for t in range(spec.clip_len):
        img, ids = bg.copy(), np.zeros((size, size), np.uint8)
        for oid, (c, inst, m) in enumerate(objs, 1):
            cur = dict(inst)
            cur['cx'] = inst['cx'] + m['vx'] * t
            cur['cy'] = inst['cy'] + m['vy'] * t
            cur['rot'] = inst['rot'] + m['vr'] * t
            cur['scale'] = inst['scale'] * (1 + m['breathe'] * np.sin(t))
            cur['wobble'] = inst['wobble'] + m['vw'] * t
            _draw(img, ids, oid, classes[c], cur)
        gain = np.exp(light[t, 0]) * np.exp(light[t, 1:] / 2)
        frame = _finish((img - 128.0) * gain + 128.0 + 40.0 * light[t, 1:],
                        rng)
        cv2.imwrite(osp.join(img_dir, f'{t:05d}.jpg'), frame[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        write_indexed_png(osp.join(ann_dir, f'{t:05d}.png'), ids, palette)


def _voc_palette() -> List[int]:
    """The PASCAL VOC palette of DAVIS annotations (what the propagation
    code gives an image without a palette)."""
    buf = io.BytesIO()
    Image.new('L', (1, 1)).save(buf, format='PNG')
    buf.seek(0)
    return read_palette(buf)


def generate_world(root: str, spec: WorldSpec) -> Dict[str, object]:
    """Write the world under ``root`` (skipped when ``world.json`` there
    already describes the same spec).

    Returns:
        dict: ``spec``, ``classes`` and the paths ``ade``, ``knn_train``,
        ``knn_val`` and ``davis``.
    """
    info_path = osp.join(root, 'world.json')
    if osp.isfile(info_path):
        with open(info_path) as f:
            info = json.load(f)
        # through JSON, as stored (tuples become lists)
        if info.get('spec') == json.loads(json.dumps(asdict(spec))):
            return info
    rng = np.random.default_rng(spec.seed)
    classes = _class_table(rng, spec.num_classes)
    ade = osp.join(root, 'ade')
    for split, n, knn in (('training', spec.num_train, 'train'),
                          ('validation', spec.num_val, 'val')):
        for sub in ('images', 'annotations'):
            os.makedirs(osp.join(ade, sub, split), exist_ok=True)
        for i in range(n):
            img, seg, dom = render_scene(rng, classes, spec)
            name = f'scene_{split[0]}_{i:05d}'
            bgr = np.ascontiguousarray(img[..., ::-1])
            cv2.imwrite(osp.join(ade, 'images', split, f'{name}.jpg'), bgr,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            # png 1 = background, c + 2 = class c (0 stays 'unlabelled')
            cv2.imwrite(
                osp.join(ade, 'annotations', split, f'{name}.png'), seg + 1)
            folder = osp.join(root, 'knn', knn, classes[dom]['name'])
            os.makedirs(folder, exist_ok=True)
            cv2.imwrite(osp.join(folder, f'{name}.jpg'), bgr,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
    # k-NN folders must hold the same classes on both sides
    for name in (c['name'] for c in classes):
        for knn in ('train', 'val'):
            os.makedirs(osp.join(root, 'knn', knn, name), exist_ok=True)
    davis = osp.join(root, 'davis')
    palette = _voc_palette()
    seqs = [f'clip{i:02d}' for i in range(spec.num_clips)]
    for seq in seqs:
        _write_clip(rng, classes, spec,
                    osp.join(davis, 'JPEGImages', '480p', seq),
                    osp.join(davis, 'Annotations', '480p', seq), palette)
    os.makedirs(osp.join(davis, 'ImageSets', '2017'), exist_ok=True)
    with open(osp.join(davis, 'ImageSets', '2017', 'val.txt'), 'w') as f:
        f.write('\n'.join(seqs) + '\n')
    info = dict(
        spec=asdict(spec),
        classes=classes,
        ade=ade,
        knn_train=osp.join(root, 'knn', 'train'),
        knn_val=osp.join(root, 'knn', 'val'),
        davis=davis)
    with open(info_path, 'w') as f:
        json.dump(info, f, indent=1)
    return info
