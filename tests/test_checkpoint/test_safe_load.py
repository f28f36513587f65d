"""The loading layer reads genuine files and refuses everything else with
an error that names the file: allowed globals, the opt-in, bad files,
``.safetensors``, the mmengine schemes and the fit check."""
import argparse
import datetime
import re

import numpy as np
import pytest
import torch
from checkpoint_helpers import Payload, build_demo_model
from helpers import load_tool
from mmengine.logging import HistoryBuffer

from selfpatch_mm.checkpoint import (ALLOW_UNSAFE_ENV, CheckpointLoadError,
                                     CheckpointMismatchError,
                                     UnsafeCheckpointError,
                                     allowed_global_names,
                                     convert_official_full,
                                     load_checkpoint_file, verify_load_from)


def test_runner_checkpoint_needs_exactly_the_allowed_globals(runner_ckpt):
    """Every global of a real Runner checkpoint is allowed (and each of
    this file's globals is one we list, none more is needed to load it)."""
    found = set(torch.serialization.get_unsafe_globals_in_checkpoint(
        runner_ckpt))
    assert found == {
        'builtins.getattr', 'mmengine.logging.history_buffer.HistoryBuffer',
        'numpy.dtype', 'numpy.ndarray',
        'numpy._core.multiarray._reconstruct',
        'numpy._core.multiarray.scalar'
    }
    assert found <= set(allowed_global_names())
    ckpt = load_checkpoint_file(runner_ckpt)
    assert {'meta', 'state_dict', 'message_hub', 'optimizer',
            'param_schedulers'} <= set(ckpt)
    loss = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss, HistoryBuffer) and np.isfinite(loss.mean())
    assert loss.statistics('max') >= loss.statistics('min')


def test_restricted_getattr_only_reaches_history_buffer_methods(tmp_path):
    """``builtins.getattr`` is allowed only as HistoryBuffer's own pickled
    method table: a file using it on anything else is refused."""

    class Sneaky:

        def __reduce__(self):
            return (getattr, (np.ndarray, '__class__'))

    path = tmp_path / 'getattr.pth'
    torch.save({'x': Sneaky()}, path)
    with pytest.raises(UnsafeCheckpointError,
                       match=r'getattr\.pth.*names builtins\.getattr'):
        load_checkpoint_file(str(path))


def _official_from_ours(state):
    """Our SelfPatch state dict in the authors' ``main_selfpatch.py``
    layout: the inverse of the converter's key mapping."""
    rules = [(r'patch_embed\.projection\.', 'patch_embed.proj.'),
             (r'layers\.(\d+)\.ln1\.', r'blocks.\1.norm1.'),
             (r'layers\.(\d+)\.ln2\.', r'blocks.\1.norm2.'),
             (r'layers\.(\d+)\.attn\.', r'blocks.\1.attn.'),
             (r'layers\.(\d+)\.ffn\.layers\.0\.0\.', r'blocks.\1.mlp.fc1.'),
             (r'layers\.(\d+)\.ffn\.layers\.1\.', r'blocks.\1.mlp.fc2.'),
             (r'^neck\.blocks\.', 'ca_head.cls_blocks.'),
             (r'^neck\.', 'ca_head.'), (r'^head\.', 'c_head.'),
             (r'^patch_head\.', 'p_head.'),
             (r'parametrizations\.weight\.original0', 'weight_g'),
             (r'parametrizations\.weight\.original1', 'weight_v')]
    nets = {'student': {}, 'teacher': {}}
    loss = {}
    for key, value in state.items():
        if key.endswith('loss_module.center'):
            name = 'patch_center' if key.startswith('patch') else 'center'
            loss[name] = value.reshape(1, -1)
            continue
        net = 'teacher' if key.startswith('teacher.') else 'student'
        key = key[len('teacher.'):] if net == 'teacher' else key
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        nets[net][('module.' if net == 'student' else '') + key] = value
    return dict(nets, dino_loss=loss, epoch=100, optimizer={})


def test_authors_file_with_args_namespace_loads_and_converts(
        tmp_path, demo_state):
    ckpt = _official_from_ours(demo_state)
    ckpt['args'] = argparse.Namespace(
        arch='vit_small', patch_size=16, out_dim=65536, use_fp16=True,
        local_crops_scale=(0.05, 0.4), lr=0.0005)
    src = tmp_path / 'checkpoint.pth'
    torch.save(ckpt, src)
    loaded = load_checkpoint_file(str(src))
    assert loaded['args'].local_crops_scale == (0.05, 0.4)
    # the converter gives back exactly our state dict (a round trip)
    dst = tmp_path / 'mm.pth'
    load_tool('tools/model_converters/official_to_mm.py').main(
        [str(src), str(dst)])
    out = load_checkpoint_file(str(dst))
    assert out['meta']['layout'] == 'official_full'
    assert set(out['state_dict']) == set(demo_state)
    for k, v in demo_state.items():
        assert torch.equal(out['state_dict'][k].reshape(v.shape), v), k
    assert set(convert_official_full(loaded)) == set(demo_state)


def test_blocked_file_error_names_file_global_and_opt_in(payload):
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_file(payload.path)
    msg = str(info.value)
    for part in (payload.path, 'posix.system', ALLOW_UNSAFE_ENV,
                 '--allow-unsafe-pickle'):
        assert part in msg
    assert not payload.marker.exists()


def test_opt_in_loads_a_trusted_pickle_and_warns(tmp_path, monkeypatch):
    path = tmp_path / 'trusted.pth'
    torch.save({'state_dict': {'w': torch.ones(2)},
                'meta': {'day': datetime.date(2024, 1, 2)}}, path)
    with pytest.raises(UnsafeCheckpointError, match='datetime.date'):
        load_checkpoint_file(str(path))
    monkeypatch.setenv(ALLOW_UNSAFE_ENV, '1')
    with pytest.warns(UserWarning, match=r'UNSAFE PICKLE.*trusted\.pth'):
        ckpt = load_checkpoint_file(str(path))
    assert ckpt['meta']['day'] == datetime.date(2024, 1, 2)
    # genuine files still take the safe path: no warning
    torch.save({'w': torch.ones(1)}, tmp_path / 'plain.pth')
    with warnings_none():
        load_checkpoint_file(str(tmp_path / 'plain.pth'))


def test_opt_in_really_unpickles_so_the_payload_tests_mean_something(
        tmp_path):
    """Control: with the opt-in this payload does run, so the other tests'
    "marker never appears" is a real check."""
    marker = tmp_path / 'ran'
    torch.save({'x': Payload(marker)}, tmp_path / 'p.pth')
    with pytest.warns(UserWarning, match='UNSAFE PICKLE'):
        load_checkpoint_file(str(tmp_path / 'p.pth'), allow_unsafe=True)
    assert marker.exists()


class warnings_none:
    """Fail if a ``UserWarning`` is raised inside the block."""

    def __enter__(self):
        import warnings
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter('error', UserWarning)

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


@pytest.mark.parametrize('kind', ['empty', 'half', 'text', 'legacy_half',
                                  'safetensors'])
def test_bad_files_name_the_file(tmp_path, runner_ckpt, kind):
    data = open(runner_ckpt, 'rb').read()
    path = tmp_path / f'bad_{kind}.pth'
    if kind == 'empty':
        path.write_bytes(b'')
        expect = 'empty'
    elif kind == 'half':  # a kill or a full disk during torch.save
        path.write_bytes(data[:len(data) // 2])
        expect = 'cut short'
    elif kind == 'text':
        path.write_text('<html>Google Drive: virus scan warning</html>')
        expect = 'not a torch checkpoint'
    elif kind == 'legacy_half':
        torch.save({'w': torch.zeros(64)}, path,
                   _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes()[:200])
        expect = 'legacy'
    else:
        path = tmp_path / 'bad.safetensors'
        path.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": nonsense')
        expect = 'safetensors'
    with pytest.raises(CheckpointLoadError) as info:
        load_checkpoint_file(str(path))
    assert str(path) in str(info.value) and expect in str(info.value)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint_file(str(tmp_path / 'missing.pth'))


def test_mmengine_schemes_route_through_the_safe_loader():
    from mmengine.runner.checkpoint import CheckpointLoader

    from selfpatch_mm.checkpoint.mmengine_loaders import (load_from_http,
                                                          load_from_local)
    get = CheckpointLoader._get_checkpoint_loader
    assert get('work_dirs/epoch_1.pth') is load_from_local
    assert get('http://host/x.pth') is load_from_http
    assert get('https://host/x.pth') is load_from_http


def test_load_from_of_another_model_fails_with_a_summary(tmp_path):
    model = build_demo_model()
    path = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(8, 3),
                               'backbone.layer1.0.bn1.weight':
                               torch.zeros(8)}}, path)
    with pytest.raises(CheckpointMismatchError) as info:
        verify_load_from(model, str(path))
    msg = str(info.value)
    assert re.search(r'resnet\.pth does not fit the backbone: loaded 0/51; '
                     r'missing 51 \(e\.g\. backbone\.pos_embed', msg)
    assert 'unexpected 2' in msg and 'allow_partial_load=True' in msg
    assert verify_load_from(model, str(path), allow_partial=True).total == 51
    # the authors' file, unconverted: the cause says so
    torch.save({'student': {'module.backbone.blocks.0.norm1.weight':
                            torch.zeros(96)},
                'teacher': {'backbone.blocks.0.norm1.weight':
                            torch.zeros(96)}}, path)
    with pytest.raises(CheckpointMismatchError, match='official_to_mm'):
        verify_load_from(model, str(path))
    # a backbone-only file given as load_from
    torch.save({'state_dict': {k[len('backbone.'):]: v
                               for k, v in model.state_dict().items()
                               if k.startswith('backbone.')}}, path)
    with pytest.raises(CheckpointMismatchError, match='bare backbone'):
        verify_load_from(model, str(path))
    # our own checkpoint fits fully
    torch.save({'state_dict': model.state_dict()}, path)
    report = verify_load_from(model, str(path))
    assert len(report.loaded) == 51 and not report.missing


def test_openmmlab_style_files_load(tmp_path):
    """mmcv 1.x / mmdet / mmseg release files: plain ``meta`` with tuples,
    palettes and numpy scalars from ``hook_msgs`` (numpy 1.x names too)."""
    path = tmp_path / 'mask_rcnn_r50_fpn_1x_coco.pth'
    meta = dict(mmcv_version='1.3.17', CLASSES=('person', 'bicycle'),
                PALETTE=[[220, 20, 60], [119, 11, 32]], epoch=12,
                config='model = dict(...)',
                hook_msgs=dict(best_score=np.float64(0.38),
                               last_ckpt='work_dirs/epoch_12.pth'),
                seed=np.int64(0), hist=np.arange(4, dtype=np.float32))
    torch.save({'meta': meta, 'state_dict': {'backbone.conv1.weight':
                                             torch.zeros(2, 3)}}, path)
    ckpt = load_checkpoint_file(str(path))
    assert ckpt['meta']['CLASSES'] == ('person', 'bicycle')
    assert ckpt['meta']['hook_msgs']['best_score'] == np.float64(0.38)
    # a file written with numpy 1.x names numpy.core.multiarray.*: make
    # one from a legacy (plain pickle) file, whose GLOBALs are text lines
    legacy = tmp_path / 'numpy1.pth'
    torch.save({'meta': meta}, legacy, _use_new_zipfile_serialization=False)
    data = legacy.read_bytes()
    assert b'numpy._core.multiarray' in data
    legacy.write_bytes(data.replace(b'numpy._core.multiarray',
                                    b'numpy.core.multiarray'))
    old = load_checkpoint_file(str(legacy))['meta']
    assert old['seed'] == 0 and old['hist'].dtype == np.float32
