# Copyright (c) selfpatch_mm contributors. All rights reserved.
"""Video object segmentation by label propagation of patch features.

The protocol of the SelfPatch (https://arxiv.org/abs/2206.07990) and DINO
DAVIS-2017 evaluation (``eval_video_segmentation.py``, after UVC):

* frames are resized so the short side is 480 pixels and the long side is
  rounded down to a multiple of 64;
* features are the last block's patch tokens, L2-normalised;
* the labels of a frame come from the first frame (given annotation) and
  the ``n_last_frames=7`` preceding frames (their soft, propagated labels);
* each target patch takes the ``topk=5`` largest affinities
  ``exp(cos / 0.1)`` among the source patches of all context frames that lie
  within a square neighbourhood of radius ``size_mask_neighborhood=12``
  patches, normalised to sum to 1;
* the patch-level label map is bilinearly upsampled by the patch size, each
  channel min-max normalised, arg-maxed, and resized to the original frame
  size with nearest neighbour.
"""
import os.path as osp
from collections import deque
from glob import glob
from typing import Callable, Iterable, List, Optional, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    'davis_frame_size', 'neighbourhood_mask', 'propagate_labels',
    'normalize_label_maps', 'read_palette', 'write_indexed_png',
    'segment_video', 'list_frames'
]

#: Affinity temperature of the official code.
TEMPERATURE = 0.1


def davis_frame_size(h: int,
                     w: int,
                     resolution: int = 480,
                     long_side_multiple: int = 64) -> Tuple[int, int]:
    """Size ``(H, W)`` a frame is resized to before feature extraction.

    The short side becomes ``resolution`` and the long side keeps the aspect
    ratio, rounded down to a multiple of ``long_side_multiple`` (official:
    854x480 becomes 832x480).
    """
    if h > w:
        th = int(
            (resolution * h / w) // long_side_multiple * long_side_multiple)
        tw = resolution
    else:
        tw = int(
            (resolution * w / h) // long_side_multiple * long_side_multiple)
        th = resolution
    if th <= 0 or tw <= 0:
        raise ValueError(
            f'A {w}x{h} frame at resolution {resolution} gives an empty '
            f'size ({tw}x{th}); lower --long-side-multiple '
            f'({long_side_multiple}) or raise --resolution.')
    return th, tw


def neighbourhood_mask(hw: Tuple[int, int],
                       radius: int,
                       device: Optional[torch.device] = None) -> torch.Tensor:
    """``(N, N)`` bool: target patch ``i`` may use source patch ``j``.

    True when both grid offsets are at most ``radius`` (a square window).
    """
    h, w = hw
    ys = torch.arange(h, device=device).repeat_interleave(w)
    xs = torch.arange(w, device=device).repeat(h)
    return ((ys[:, None] - ys[None]).abs() <= radius) & \
        ((xs[:, None] - xs[None]).abs() <= radius)


@torch.no_grad()
def propagate_labels(target: torch.Tensor,
                     sources: torch.Tensor,
                     source_labels: torch.Tensor,
                     topk: int = 5,
                     mask: Optional[torch.Tensor] = None,
                     temperature: float = TEMPERATURE,
                     chunk: int = 2048) -> torch.Tensor:
    """Soft labels of a target frame from context frames.

    Args:
        target (Tensor): Target features ``(N, C)``, L2-normalised.
        sources (Tensor): Context features ``(M, N, C)``, L2-normalised.
        source_labels (Tensor): Context labels ``(M, K, N)`` (one-hot or
            soft, ``K`` classes including background).
        topk (int): Source patches each target patch takes labels from.
        mask (Tensor, optional): ``(N, N)`` bool from
            :func:`neighbourhood_mask`; None uses every source patch.
        temperature (float): Affinity temperature.
        chunk (int): Target patches per step; bounds memory to
            ``chunk * M * N`` floats.

    Returns:
        Tensor: ``(K, N)`` soft labels.
    """
    M, N, _ = sources.shape
    K = source_labels.shape[1]
    labels = source_labels.permute(0, 2, 1).reshape(M * N, K)
    k = min(topk, M * N)
    out = target.new_empty(N, K)
    for start in range(0, N, chunk):
        q = target[start:start + chunk]
        aff = torch.exp(torch.einsum('qc,mnc->qmn', q, sources) / temperature)
        if mask is not None:
            # Multiplying (not -inf) as the official code: patches outside
            # the window get 0 and can only be picked when fewer than k
            # lie inside, and then weigh nothing.
            aff = aff * mask[start:start + chunk, None, :]
        vals, idx = aff.flatten(1).topk(k, dim=1)
        weights = vals / vals.sum(1, keepdim=True)
        out[start:start + chunk] = torch.einsum('qk,qkc->qc', weights,
                                                labels[idx])
    return out.T


def normalize_label_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each channel of ``(K, H, W)`` with a positive max
    (the official ``norm_mask``); other channels are left as they are."""
    out = maps.clone()
    for c in range(maps.shape[0]):
        m = maps[c]
        if m.max() > 0:
            m = m - m.min()
            if m.max() > 0:  # a constant channel stays 0, not nan
                m = m / m.max()
            out[c] = m
    return out


def read_palette(path: str) -> List[int]:
    """Palette of an indexed PNG; the PASCAL VOC palette that DAVIS uses
    when the image has none."""
    with Image.open(path) as img:
        palette = img.getpalette() if img.mode == 'P' else None
    if palette:
        return palette
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def write_indexed_png(path: str, label: np.ndarray,
                      palette: List[int]) -> None:
    """Save ``(H, W)`` uint8 object ids as an indexed PNG."""
    img = Image.fromarray(label.astype(np.uint8), mode='P')
    img.putpalette(palette)
    img.save(path, format='PNG')


def _read_frame(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'Cannot read frame {path} (missing or not an '
                         'image).')
    return img


#: A frame as :func:`segment_video` takes it: a JPEG path, or a path with
#: its BGR image already resized to :func:`davis_frame_size` (as the frame
#: loader of :mod:`.davis_propagation` gives it).
Frame = Union[str, Tuple[str, np.ndarray]]


@torch.no_grad()
def segment_video(frames: Iterable[Frame],
                  first_label: np.ndarray,
                  extract: Callable[[np.ndarray], torch.Tensor],
                  patch_size: int,
                  out_dir: str,
                  palette: List[int],
                  resolution: int = 480,
                  n_last_frames: int = 7,
                  size_mask_neighborhood: int = 12,
                  topk: int = 5,
                  long_side_multiple: int = 64,
                  on_frame: Optional[Callable[[], None]] = None) -> None:
    """Propagate the first frame's objects through a video.

    Writes ``out_dir/<frame>.png`` for every frame (the first one is the
    given annotation).

    Args:
        frames (Iterable): The sorted frames (see :data:`Frame`): paths, read
            and resized here with OpenCV, or ``(path, image)`` pairs
            resized by a dataloader with the same OpenCV bilinear resize.
        first_label (np.ndarray): ``(H, W)`` object ids of the first frame.
        extract (Callable): ``(h, w, 3)`` uint8 BGR frame (sides multiples of
            the patch size) to ``(C, h/p, w/p)`` features.
        patch_size (int): Patch size of the model.
        out_dir (str): Result folder of this sequence.
        palette (list[int]): Palette of the written PNGs.
        resolution (int): Short side of the resized frames.
        n_last_frames (int): Preceding frames used as context.
        size_mask_neighborhood (int): Neighbourhood radius in patches;
            0 disables the restriction.
        topk (int): Source patches per target patch.
        long_side_multiple (int): See :func:`davis_frame_size`.
        on_frame (Callable, optional): Called after each frame (progress).
    """
    ori_h, ori_w = first_label.shape
    th, tw = davis_frame_size(ori_h, ori_w, resolution, long_side_multiple)
    frames = iter(frames)
    first_path, first_img = _resized(next(frames), (th, tw))
    # The official ViT drops the rows/columns its patch grid does not cover:
    # crop them, so any size works with our strict backbone.
    gh, gw = th // patch_size, tw // patch_size
    if gh == 0 or gw == 0:
        raise ValueError(f'Frames of {first_path} resize to {tw}x{th}, '
                         f'smaller than one {patch_size}px patch.')
    num_classes = int(first_label[first_label != 255].max(initial=0)) + 1

    def features(img: np.ndarray) -> torch.Tensor:
        img = img[:gh * patch_size, :gw * patch_size]
        feat = extract(img)
        return F.normalize(feat.flatten(1).T.float(), dim=1)  # (N, C)

    small = np.array(
        Image.fromarray(
            np.where(first_label == 255, 0,
                     first_label).astype(np.uint8)).resize((gw, gh),
                                                           Image.NEAREST))
    first_seg = F.one_hot(
        torch.from_numpy(small).long().flatten(), num_classes).T.float()
    first_feat = features(first_img)
    first_seg = first_seg.to(first_feat.device)
    write_indexed_png(
        osp.join(out_dir, _png_name(first_path)), first_label, palette)
    if on_frame is not None:
        on_frame()
    mask = neighbourhood_mask((gh, gw), size_mask_neighborhood,
                              first_feat.device) \
        if size_mask_neighborhood > 0 else None
    context = deque(maxlen=n_last_frames)
    for frame in frames:
        path, img = _resized(frame, (th, tw))
        feat = features(img)
        feats = torch.stack([first_feat] + [c[0] for c in context])
        segs = torch.stack([first_seg] + [c[1] for c in context])
        seg = propagate_labels(feat, feats, segs, topk, mask)
        context.append((feat, seg))
        up = F.interpolate(
            seg.reshape(1, num_classes, gh, gw),
            scale_factor=patch_size,
            mode='bilinear',
            align_corners=False)[0]
        pred = normalize_label_maps(up).argmax(0).to(torch.uint8).cpu()
        pred = np.array(
            Image.fromarray(pred.numpy()).resize((ori_w, ori_h),
                                                 Image.NEAREST))
        write_indexed_png(osp.join(out_dir, _png_name(path)), pred, palette)
        if on_frame is not None:
            on_frame()


def _resized(frame: Frame, size: Tuple[int, int]) -> Tuple[str, np.ndarray]:
    """``(path, image)`` of a frame at ``size`` ``(H, W)``."""
    if isinstance(frame, str):
        return frame, cv2.resize(_read_frame(frame), size[::-1])
    path, img = frame
    if img.shape[:2] != tuple(size):
        raise ValueError(f'Frame {path} is {img.shape[1]}x{img.shape[0]}, '
                         f'expected {size[1]}x{size[0]} (davis_frame_size).')
    return path, img


def _png_name(frame_path: str) -> str:
    return osp.splitext(osp.basename(frame_path))[0] + '.png'


def list_frames(frame_dir: str) -> List[str]:
    """Sorted ``*.jpg`` frames of a sequence folder."""
    frames = sorted(glob(osp.join(frame_dir, '*.jpg')))
    if not frames:
        raise FileNotFoundError(f'No *.jpg frames in {frame_dir}.')
    return frames
