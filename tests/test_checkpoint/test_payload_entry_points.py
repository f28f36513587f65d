"""No entry point runs a pickled payload: every way this project reads a
checkpoint, given the payload file locally and over HTTP, refuses it with
an error naming the file, and the payload's marker never appears.

The tools run in-process through their ``main(argv)``; genuine files
through the same entry points are tested beside them (a resume of a real
Runner checkpoint, ``load_from`` of it, the dense backbone)."""
import pytest
import torch
from checkpoint_helpers import DEMO_CFG, REPO, build_demo_model
from helpers import TINY_DENSE_VIT as TINY_DENSE
from helpers import load_tool

from selfpatch_mm.checkpoint import UnsafeCheckpointError

TINY_VIT = dict(arch=TINY_DENSE['arch'], img_size=64, patch_size=8)
IMAGE = str(REPO / 'demo' / 'images' / 'scene_003.jpg')


def _train(src, work_dir, resume, epochs=2):
    args = [DEMO_CFG, '--work-dir', str(work_dir), '--cfg-options',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'train_dataloader.prefetch_factor=None',
            'train_dataloader.dataset.indices=8',
            f'train_cfg.max_epochs={epochs}']
    if resume:
        args[1:1] = ['--resume', src]
    else:
        args.append(f'load_from={src}')
    load_tool('tools/train.py').main(args)


def _davis(src, tmp_path):
    """A one-frame DAVIS-2017 folder: the tool gets as far as the model."""
    import numpy as np
    from PIL import Image
    root = tmp_path / 'davis'
    (root / 'ImageSets' / '2017').mkdir(parents=True)
    (root / 'ImageSets' / '2017' / 'val.txt').write_text('seq\n')
    for sub, ext in (('JPEGImages', 'jpg'), ('Annotations', 'png')):
        (root / sub / '480p' / 'seq').mkdir(parents=True)
        name = root / sub / '480p' / 'seq' / f'00000.{ext}'
        if ext == 'jpg':
            Image.new('RGB', (64, 32), (90, 120, 200)).save(name)
        else:
            label = Image.fromarray(np.eye(32, 64, dtype=np.uint8), 'P')
            label.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
            label.save(name)
    load_tool('tools/analysis_tools/davis_label_propagation.py').main([
        DEMO_CFG, src, '--data-root', str(root), '--out-dir',
        str(tmp_path / 'out'), '--device', 'cpu'])


def _knn(src, tmp_path):
    for split in ('train', 'val'):
        (tmp_path / split / 'a').mkdir(parents=True)
    load_tool('tools/analysis_tools/knn_eval.py').main([
        DEMO_CFG, src, '--train-dir', str(tmp_path / 'train'), '--val-dir',
        str(tmp_path / 'val'), '--device', 'cpu', '--num-workers', '0'])


def _dense_init_cfg(src, tmp_path):
    from selfpatch_mm.models import SelfPatchDenseViT
    SelfPatchDenseViT(init_cfg=dict(type='Pretrained', checkpoint=src),
                      **TINY_DENSE).init_weights()


def _mmengine_load_checkpoint(src, tmp_path):
    """What mmpretrain's ``init_model`` / ``FeatureExtractor`` do."""
    from mmengine.runner import load_checkpoint

    from selfpatch_mm.models import SelfPatchViT
    load_checkpoint(SelfPatchViT(**TINY_VIT), src, map_location='cpu')


def _mmpretrain_init_model(src, tmp_path):
    from mmpretrain.apis import init_model
    init_model(DEMO_CFG, src, device='cpu')


def _mmengine_pretrained_init(src, tmp_path):
    """``init_cfg=dict(type='Pretrained')`` of a plain mmpretrain ViT."""
    from selfpatch_mm.models import SelfPatchViT
    SelfPatchViT(init_cfg=dict(type='Pretrained', checkpoint=src,
                               prefix='backbone.'), **TINY_VIT).init_weights()


ENTRY_POINTS = {
    'train --resume': lambda src, tmp: _train(src, tmp / 'w', resume=True),
    'train load_from': lambda src, tmp: _train(src, tmp / 'w', resume=False),
    'test.py': lambda src, tmp: load_tool('tools/test.py').main(
        [DEMO_CFG, src, '--work-dir', str(tmp / 'work')]),
    'official_to_mm': lambda src, tmp: load_tool(
        'tools/model_converters/official_to_mm.py').main(
            [src, str(tmp / 'out.pth')]),
    'extract_backbone': lambda src, tmp: load_tool(
        'tools/model_converters/extract_backbone.py').main(
            [src, str(tmp / 'out.safetensors')]),
    'visualize_patches': lambda src, tmp: load_tool(
        'tools/analysis_tools/visualize_patches.py').main(
            [DEMO_CFG, src, IMAGE, '--out-dir', str(tmp / 'pics'),
             '--device', 'cpu']),
    'knn_eval': _knn,
    'davis': _davis,
    'dense init_cfg Pretrained': _dense_init_cfg,
    'mmengine load_checkpoint': _mmengine_load_checkpoint,
    'mmpretrain init_model': _mmpretrain_init_model,
    'mmengine PretrainedInit': _mmengine_pretrained_init,
}


@pytest.mark.parametrize('where', ['local', 'url'])
@pytest.mark.parametrize('entry', sorted(ENTRY_POINTS))
def test_payload_never_runs(entry, where, payload, tmp_path):
    src = payload.path if where == 'local' else payload.url
    # converters print the error and exit; the others raise it
    with pytest.raises((UnsafeCheckpointError, SystemExit)) as info:
        ENTRY_POINTS[entry](src, tmp_path)
    msg = str(info.value)
    assert 'payload.pth' in msg and 'posix.system' in msg, msg
    assert '--allow-unsafe-pickle' in msg
    assert not payload.marker.exists(), f'{entry} ({where}) ran the payload'


def test_genuine_runner_checkpoint_resumes_and_loads(runner_ckpt, tmp_path,
                                                     http_root):
    """The real demo checkpoint resumes (Runner.resume through the safe
    loader: optimizer, schedulers, message hub) and trains its second
    epoch; it loads as ``load_from``, over HTTP, and into the dense
    backbone."""
    from mmengine.runner import load_checkpoint

    from selfpatch_mm.checkpoint import load_checkpoint_file
    from selfpatch_mm.models import SelfPatchDenseViT
    from selfpatch_mm.apis import build_runner, load_config
    _train(runner_ckpt, tmp_path / 'resume', resume=True, epochs=2)
    resumed = load_checkpoint_file(str(tmp_path / 'resume' / 'epoch_2.pth'))
    assert resumed['meta']['epoch'] == 2 and resumed['meta']['iter'] == 2
    # load_from: the fit check passes, and the Runner's loader fills the
    # model with the file's weights
    cfg = load_config(DEMO_CFG, dict(load_from=runner_ckpt),
                      str(tmp_path / 'load'))
    runner = build_runner(cfg)
    runner.load_checkpoint(cfg.load_from)
    file_state = load_checkpoint_file(runner_ckpt)['state_dict']
    for k, v in runner.model.state_dict().items():
        assert torch.equal(v, file_state[k]), k
    root, base_url = http_root
    (root / 'genuine.pth').write_bytes(open(runner_ckpt, 'rb').read())
    model = build_demo_model()
    ckpt = load_checkpoint(model, f'{base_url}/genuine.pth', strict=True)
    assert ckpt['meta']['epoch'] == 1
    info = SelfPatchDenseViT(**TINY_DENSE).load_pretrained(runner_ckpt)
    assert info == dict(missing=[], unexpected=[])
