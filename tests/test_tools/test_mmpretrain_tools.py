"""mmpretrain's own tools on our pretraining configs, through their entry
points: ``FeatureExtractor`` (with a checkpoint of our training),
``get_flops.py``, ``vis_scheduler.py``, and our ``vis_scheduler.py`` with
the teacher's schedules."""
import glob
import math
import os.path as osp
import re
import sys
from pathlib import Path

import mmpretrain
import pytest
import torch
from helpers import run_command, tool_env

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / 'configs/selfpatch/selfpatch_vit-tiny-p8_1xb8-2e_demo.py'
MIM_TOOLS = Path(osp.dirname(mmpretrain.__file__)) / '.mim' / 'tools'
IMAGES = sorted(glob.glob(str(REPO / 'demo/images/*.*')))


def _run(cmd, cwd, timeout=120):
    return run_command(cmd, cwd, tool_env(threads=2, MPLBACKEND='Agg'),
                       timeout=timeout).stdout


@pytest.fixture(scope='module')
def demo_ckpt(tmp_path_factory) -> Path:
    """A checkpoint of one demo iteration through tools/train.py."""
    work = tmp_path_factory.mktemp('demo_train')
    _run([
        sys.executable, REPO / 'tools/train.py', DEMO, '--work-dir', work,
        '--cfg-options', 'train_cfg.max_epochs=1',
        'train_dataloader.num_workers=0',
        f'train_dataloader.dataset.data_root={REPO / "demo/images"}',
        'train_dataloader.batch_size=24'
    ], cwd=work, timeout=240)
    return work / 'epoch_1.pth'


def test_feature_extractor_on_our_checkpoint(demo_ckpt):
    import selfpatch_mm  # noqa: F401
    from mmpretrain import FeatureExtractor

    from selfpatch_mm.checkpoint import load_checkpoint_file
    extractor = FeatureExtractor(
        model=str(DEMO), pretrained=str(demo_ckpt), device='cpu')
    state = load_checkpoint_file(str(demo_ckpt))['state_dict']
    model = extractor.model
    # The training's weights, teacher and student.
    assert torch.equal(model.teacher.backbone.pos_embed,
                       state['teacher.backbone.pos_embed'])
    assert torch.equal(model.backbone.pos_embed, state['backbone.pos_embed'])
    feats = extractor(IMAGES[:2], batch_size=2)
    # Patch features of the teacher's backbone: the config's 224 centre
    # crop in 8-pixel patches.
    assert len(feats) == 2 and feats[0][-1].shape == (96, 28, 28)
    data = extractor.model.data_preprocessor(
        next(extractor.preprocess(IMAGES[:1])), False)['inputs']
    with torch.no_grad():
        direct = model.teacher.backbone(data)[-1][0]
    torch.testing.assert_close(feats[0][-1], direct)
    student = extractor(IMAGES[:1], net='student')[0][-1]
    assert not torch.allclose(student, feats[0][-1])


@pytest.mark.slow
def test_get_flops_prints_the_backbone_flops(tmp_path):
    out = _run([
        sys.executable, MIM_TOOLS / 'analysis_tools/get_flops.py', DEMO,
        '--shape', '64'
    ], cwd=tmp_path)
    flops = re.search(r'Flops: ([\d.]+)M', out)
    assert flops, out[-2000:]
    # 64 tokens of a 96-d, 4-layer ViT (MLP ratio 4): per layer 12 N C^2
    # multiply-adds in the linear layers, plus the patch embedding
    # (N x 3*8*8 x C); mmengine's counter skips the attention's
    # scaled_dot_product_attention (2 N^2 C per layer) and adds norms/GELU.
    N, C = 64, 96
    expected = 4 * 12 * N * C * C + N * 192 * C
    assert abs(float(flops.group(1)) * 1e6 - expected) / expected < 0.01


@pytest.mark.slow
def test_mmpretrain_vis_scheduler(tmp_path):
    """mmpretrain's tool runs our hooks on its stand-in model."""
    png = tmp_path / 'wd.png'
    _run([
        sys.executable, MIM_TOOLS / 'visualization/vis_scheduler.py', DEMO,
        '-p', 'wd', '--dataset-size', '24', '--not-show', '-s', png
    ], cwd=tmp_path)
    assert png.stat().st_size > 0


@pytest.mark.slow
def test_teacher_schedules_are_plotted(tmp_path):
    """Our vis_scheduler.py: the teacher momentum follows the official
    cosine, the temperature the hook's value (demo: 3 iterations/epoch)."""
    png = tmp_path / 'm.png'
    out = _run([
        sys.executable, REPO / 'tools/visualization/vis_scheduler.py', DEMO,
        '-p', 'teacher_momentum', '--dataset-size', '24', '--not-show', '-s',
        png
    ], cwd=tmp_path)
    first, last, n = re.search(
        r'Teacher momentum: first ([\d.e-]+), last ([\d.e-]+), (\d+) ',
        out).groups()
    n = int(n)
    assert n == 6 and png.stat().st_size > 0
    official = 1 + 0.5 * (0.996 - 1) * (1 + math.cos(math.pi * 5 / 6))
    assert float(first) == 0.996
    assert abs(float(last) - official) < 1e-6


@pytest.mark.slow
def test_test_py_dumps_the_teachers_image_features(demo_ckpt, tmp_path):
    """``tools/test.py`` on a pretraining config writes one feature per
    image: the teacher's [CLS] token of the test pipeline's centre crop."""
    import pickle

    import selfpatch_mm  # noqa: F401
    from mmpretrain import FeatureExtractor
    out = tmp_path / 'feats.pkl'
    _run([
        sys.executable, REPO / 'tools/test.py', DEMO, demo_ckpt,
        '--work-dir', tmp_path / 'work', '--cfg-options',
        f'test_dataloader.dataset.data_root={REPO / "demo/images"}',
        'test_dataloader.num_workers=0', 'test_dataloader.batch_size=8',
        f'test_evaluator.out_file_path={out}'
    ], cwd=tmp_path)
    with open(out, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == len(IMAGES)
    first = next(r for r in results if r['img_path'] == IMAGES[0])
    extractor = FeatureExtractor(
        model=str(DEMO), pretrained=str(demo_ckpt), device='cpu')
    data = extractor.model.data_preprocessor(
        next(extractor.preprocess(IMAGES[:1])), False)['inputs']
    with torch.no_grad():
        expected = extractor.model.image_feat(data)[0]
    torch.testing.assert_close(first['feat'], expected, rtol=1e-4,
                               atol=1e-5)
