"""Converter outputs: ``.safetensors`` (written, read back by every loader)
and no accidental overwrite of the input or an existing file."""
import pytest
import torch
from helpers import TINY_DENSE_VIT as TINY_DENSE
from helpers import load_tool

from selfpatch_mm.checkpoint import load_checkpoint_file


@pytest.fixture(scope='module')
def extract():
    return load_tool('tools/model_converters/extract_backbone.py').main


@pytest.fixture
def full_ckpt(tmp_path, demo_state):
    path = tmp_path / 'epoch_3.pth'
    torch.save({'state_dict': demo_state, 'meta': {'epoch': 3}}, path)
    return path


@pytest.mark.parametrize('how', ['suffix', 'flag'])
def test_safetensors_backbone_round_trip(tmp_path, full_ckpt, demo_state,
                                         extract, how):
    from selfpatch_mm.models import SelfPatchDenseViT
    if how == 'suffix':
        extract([str(full_ckpt), str(tmp_path / 'vit.safetensors')])
    else:
        extract([str(full_ckpt), str(tmp_path / 'vit'), '--safetensors'])
    dst = tmp_path / 'vit.safetensors'
    assert dst.read_bytes()[8:9] == b'{'  # a safetensors header, no pickle
    ckpt = load_checkpoint_file(str(dst))
    assert ckpt['meta']['network'] == 'teacher'
    assert ckpt['meta']['epoch'] == '3'  # header values are strings
    teacher = {k[len('teacher.backbone.'):]: v for k, v in demo_state.items()
               if k.startswith('teacher.backbone.')}
    assert set(ckpt['state_dict']) == set(teacher)
    for k, v in teacher.items():
        assert torch.equal(ckpt['state_dict'][k], v), k
    # the dense backbone's init_cfg reads it (through the same loader)
    dense = SelfPatchDenseViT(
        init_cfg=dict(type='Pretrained', checkpoint=str(dst)), **TINY_DENSE)
    dense.init_weights()
    assert torch.equal(dense.layers[2].attn.qkv.weight,
                       teacher['layers.2.attn.qkv.weight'])


def test_converters_refuse_to_overwrite(tmp_path, full_ckpt, extract):
    before = full_ckpt.read_bytes()
    with pytest.raises(SystemExit, match='is the input file'):
        extract([str(full_ckpt), str(full_ckpt), '--overwrite'])
    official_to_mm = load_tool(
        'tools/model_converters/official_to_mm.py').main
    with pytest.raises(SystemExit, match='is the input file'):
        official_to_mm([str(full_ckpt), str(full_ckpt)])
    assert full_ckpt.read_bytes() == before
    dst = tmp_path / 'vit.pth'
    dst.write_bytes(b'keep me')
    with pytest.raises(SystemExit, match=r'vit\.pth already exists; pass '
                       r'--overwrite'):
        extract([str(full_ckpt), str(dst)])
    assert dst.read_bytes() == b'keep me'
    extract([str(full_ckpt), str(dst), '--overwrite'])
    assert 'layers.0.ln1.weight' in load_checkpoint_file(
        str(dst))['state_dict']


def test_converter_errors_name_the_file(tmp_path, extract):
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(SystemExit, match=r'empty\.pth is empty'):
        extract([str(empty), str(tmp_path / 'out.pth')])
    heads = tmp_path / 'heads.pth'
    torch.save({'state_dict': {'head.mlp.0.weight': torch.zeros(2)}}, heads)
    with pytest.raises(ValueError, match=r'heads\.pth.*head\.mlp'):
        extract([str(heads), str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()


def test_tool_flag_opts_in_for_a_trusted_pickle(tmp_path, demo_state,
                                                extract):
    """``--allow-unsafe-pickle`` lets a trusted file with an extra global
    (here a ``datetime``) through, with a warning naming it."""
    import datetime
    src = tmp_path / 'trusted.pth'
    torch.save({'state_dict': demo_state,
                'meta': {'saved': datetime.datetime(2024, 5, 1)}}, src)
    with pytest.raises(SystemExit, match='datetime.datetime'):
        extract([str(src), str(tmp_path / 'a.pth')])
    with pytest.warns(UserWarning, match=r'UNSAFE PICKLE.*trusted\.pth'):
        extract([str(src), str(tmp_path / 'b.pth'), '--allow-unsafe-pickle'])
    assert 'pos_embed' in load_checkpoint_file(
        str(tmp_path / 'b.pth'))['state_dict']
    tensor_only = tmp_path / 'tensor.pth'
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(ValueError, match=r'tensor\.pth holds a Tensor'):
        extract([str(tensor_only), str(tmp_path / 'c.pth')])
