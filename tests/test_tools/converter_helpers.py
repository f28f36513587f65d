"""Helpers of the converter tests: the tools as modules, and fabricated
authors' files (alinlab/SelfPatch ``main_selfpatch.py`` key names, commit
81aef14) with the demo model's tiny sizes."""
import os.path as osp

import torch
from helpers import load_tool as _load_tool

TOOLS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                 'tools', 'model_converters')

C, LAYERS, HID, BOT = 96, 4, 256, 64


def load_tool(name):
    """Import ``tools/model_converters/NAME.py`` (not a package)."""
    return _load_tool(osp.join(TOOLS, f'{name}.py'))


def _linear(out_f, in_f):
    return {'weight': torch.randn(out_f, in_f), 'bias': torch.randn(out_f)}


def _norm():
    return {'weight': torch.randn(C), 'bias': torch.randn(C)}


def _put(sd, prefix, params):
    sd.update({f'{prefix}.{k}': v for k, v in params.items()})


def official_vit(cls_pos=False):
    sd = {'pos_embed': torch.randn(1, 64 + int(cls_pos), C)}
    _put(sd, 'patch_embed.proj', {'weight': torch.randn(C, 3, 8, 8),
                                  'bias': torch.randn(C)})
    for i in range(LAYERS):
        b = f'blocks.{i}'
        _put(sd, f'{b}.norm1', _norm())
        _put(sd, f'{b}.attn.qkv', _linear(3 * C, C))
        _put(sd, f'{b}.attn.proj', _linear(C, C))
        _put(sd, f'{b}.norm2', _norm())
        _put(sd, f'{b}.mlp.fc1', _linear(4 * C, C))
        _put(sd, f'{b}.mlp.fc2', _linear(C, 4 * C))
    return sd


def official_net(prefix=''):
    sd = {f'backbone.{k}': v for k, v in official_vit().items()}
    sd['ca_head.cls_token'] = torch.randn(1, 1, C)
    for j in range(2):
        b = f'ca_head.cls_blocks.{j}'
        for name in ('norm1', 'norm2'):
            _put(sd, f'{b}.{name}', _norm())
        for name in ('q', 'k', 'v', 'proj'):
            _put(sd, f'{b}.attn.{name}', _linear(C, C))
        _put(sd, f'{b}.mlp.fc1', _linear(4 * C, C))
        _put(sd, f'{b}.mlp.fc2', _linear(C, 4 * C))
    _put(sd, 'ca_head.norm', _norm())
    for head, out in (('c_head', 1024), ('p_head', 256)):
        _put(sd, f'{head}.mlp.0', _linear(HID, C))
        _put(sd, f'{head}.mlp.2', _linear(HID, HID))
        _put(sd, f'{head}.mlp.4', _linear(BOT, HID))
        sd[f'{head}.last_layer.weight_g'] = torch.rand(out, 1)
        sd[f'{head}.last_layer.weight_v'] = torch.randn(out, BOT)
    return {prefix + k: v for k, v in sd.items()}


def official_checkpoint():
    """A full ``checkpoint.pth`` dict as ``main_selfpatch.py`` saves it
    (optimizer and args left empty)."""
    return dict(
        student=official_net('module.'),
        teacher=official_net(),
        optimizer={}, epoch=100, args=None,
        dino_loss=dict(center=torch.randn(1, 1, 1024),
                       patch_center=torch.randn(1, 256)))
