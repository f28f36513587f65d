"""compare_pretraining.py: the whole study in --quick mode, its report and
its resumability; the world is deterministic; the paired interval; known
answers of its k-NN and DAVIS metrics."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import run_tool, tool_env

TOOL = 'tools/analysis_tools/compare_pretraining.py'


def _run(out_dir: Path) -> str:
    # the standard DINO, the no-patch-loss DINO and its equal-wall-clock
    # run (the full study gives the standard DINO that run by default)
    return run_tool(
        TOOL, '--quick', '--out-dir', out_dir, '--equal-wall-base',
        'dino_no_patch_loss', '--arms', 'selfpatch', 'dino',
        'dino_no_patch_loss', 'dino_no_patch_loss_equal_wall', 'random_init',
        env=tool_env(threads=None), timeout=900).stdout


@pytest.mark.slow
def test_quick_study_reports_selfpatch_and_dino(tmp_path: Path) -> None:
    out_dir = tmp_path / 'study'
    _run(out_dir)
    summary = json.loads((out_dir / 'summary.json').read_text())
    arms = summary['arms']
    assert 'selfpatch' in arms and 'random_init' in arms
    dino = [a for a in arms if a.startswith('dino')]
    assert 'dino' in dino and 'dino_no_patch_loss' in dino, list(arms)
    assert summary['meta']['failures'] == []
    world = json.loads((out_dir / 'world' / 'world.json').read_text())
    num_val = world['spec']['num_val']
    clips = world['spec']['num_clips'] * world['spec']['clip_len']
    for arm in ['selfpatch', *dino, 'random_init']:
        run = out_dir / 'runs' / arm / 'seed0'
        result = json.loads((run / 'result.json').read_text())
        for key in ('probe_miou', 'davis_jf', 'knn_top1'):
            # what the tools measured is what the summary reports
            assert arms[arm][key]['values'] == [result[key]], (arm, key)
        # the mIoU that tools/train.py's validation printed
        printed = re.findall(r'mIoU: (\d+\.\d+)',
                             (run / 'probe.log').read_text())
        assert result['probe_miou'] == float(printed[-1]), arm
        # k-NN top-1 counts whole held-out scenes
        hits = result['knn_top1'] * num_val / 100
        assert hits == pytest.approx(round(hits)), (arm, hits)
        # a propagated mask for every frame of every clip
        assert len(list((run / 'davis').rglob('*.png'))) == clips, arm
    # 1 epoch of 32 scenes in batches of 16, drop_last: 2 steps each
    for arm in ['selfpatch', *[a for a in dino if 'equal' not in a]]:
        assert arms[arm]['pretrain_steps']['values'] == [2.0], arm
    assert arms['random_init']['pretrain_steps']['values'] == [0.0]
    assert arms['selfpatch']['pretrain_wall_s']['mean'] > 0
    assert any(a.endswith('equal_wall') for a in dino)
    assert f'selfpatch - {dino[0]}' in summary['differences']
    assert summary['meta']['mode'] == 'quick'
    md = (out_dir / 'summary.md').read_text()
    assert md.startswith('# ')
    # one seed: no interval, so no calibration verdict either
    assert 'linear-probe mIoU: untested (needs 2+ seeds)' in md, md
    assert summary['calibrated']['knn_top1']['clear'] is None
    assert (out_dir / 'summary.png').stat().st_size > 1000
    # the probe went through tools/train.py with the linear config
    probe = (out_dir / 'runs' / 'selfpatch' / 'seed0' / 'probe.py')
    assert 'FrozenSelfPatchViT' in probe.read_text()

    # resumable: a second call reruns nothing
    results = sorted(out_dir.glob('runs/*/seed0/result.json'))
    stamps = [p.stat().st_mtime_ns for p in results]
    _run(out_dir)
    assert [p.stat().st_mtime_ns for p in results] == stamps


def test_world_is_deterministic(tmp_path: Path) -> None:
    import cv2

    from projects.evidence_study import WorldSpec, generate_world
    spec = WorldSpec(seed=3, num_train=3, num_val=2, num_clips=1,
                     clip_len=3, image_size=32)
    a = generate_world(str(tmp_path / 'a'), spec)
    b = generate_world(str(tmp_path / 'b'), spec)
    # the same spec again is recognised (through JSON) and not rewritten
    stamp = (tmp_path / 'a' / 'world.json').stat().st_mtime_ns
    assert generate_world(str(tmp_path / 'a'), spec) == json.loads(
        (tmp_path / 'a' / 'world.json').read_text())
    assert (tmp_path / 'a' / 'world.json').stat().st_mtime_ns == stamp
    files = sorted(p.relative_to(tmp_path / 'a')
                   for p in (tmp_path / 'a').rglob('*.png'))
    assert len(files) == 3 + 2 + 3
    for rel in files:
        assert np.array_equal(
            cv2.imread(str(tmp_path / 'a' / rel), cv2.IMREAD_UNCHANGED),
            cv2.imread(str(tmp_path / 'b' / rel), cv2.IMREAD_UNCHANGED))
    assert a['classes'] == b['classes']
    seg = cv2.imread(
        str(next((tmp_path / 'a' / 'ade' / 'annotations').rglob('*.png'))),
        cv2.IMREAD_UNCHANGED)
    assert seg.min() >= 1 and seg.max() <= spec.num_classes + 1


def test_backgrounds_are_grey_unless_asked_for_colour(
        tmp_path: Path) -> None:
    # The background's colour was the cue DINO matched views by, so the
    # default world paints it in grey tones; 1.0 brings the hues back.
    import cv2
    from PIL import Image

    from projects.evidence_study import WorldSpec, generate_world
    from projects.evidence_study.world import _background
    assert WorldSpec().background_saturation == 0.0
    grey = _background(np.random.default_rng(0), 32, 0.0)
    assert np.array_equal(grey[..., 0], grey[..., 1])
    assert np.array_equal(grey[..., 1], grey[..., 2])

    def tint(saturation: float) -> dict:
        """Mean |R - B| of the background pixels of the written scenes and
        clip frames (no light drift, so only pixel noise and JPEG tint a
        grey background)."""
        root = tmp_path / str(saturation)
        generate_world(str(root), WorldSpec(
            seed=2, num_train=4, num_val=4, num_clips=2, clip_len=2,
            clip_light=0.0, background_saturation=saturation))
        out = {}
        for part, bg_value in (('ade', 1), ('davis', 0)):
            diffs = []
            for img in sorted((root / part).rglob('*.jpg')):
                ann = str(img).replace('images', 'annotations').replace(
                    'JPEGImages', 'Annotations')[:-4] + '.png'
                rgb = cv2.imread(str(img))[..., ::-1].astype(np.float32)
                bg = np.array(Image.open(ann)) == bg_value
                diffs.append(np.abs(rgb[..., 0] - rgb[..., 2])[bg])
            out[part] = float(np.concatenate(diffs).mean())
        return out

    grey_world, coloured_world = tint(0.0), tint(1.0)
    for part in ('ade', 'davis'):
        # noise of sigma 4 per channel gives E|R - B| = 4.5 before JPEG
        assert grey_world[part] < 5.0, (part, grey_world)
        assert coloured_world[part] > 3 * grey_world[part], (
            part, coloured_world, grey_world)


def test_paired_difference_interval() -> None:
    from projects.evidence_study.report import paired_difference
    d = paired_difference({0: 3.0, 1: 5.0, 2: 4.0}, {0: 1.0, 1: 2.0, 2: 3.0})
    assert d['mean'] == pytest.approx(2.0)
    assert d['std'] == pytest.approx(1.0)
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, df=2)
    assert d['ci95'] == pytest.approx([2.0 - half, 2.0 + half])
    assert paired_difference({0: 1.0}, {0: 0.5})['ci95'] is None
    assert paired_difference({0: 1.0}, {1: 0.5}) is None


def test_summary_calibrates_against_random_init() -> None:
    from projects.evidence_study.report import METRICS, summarize

    def runs(base: float) -> dict:
        return {s: {**{k: base + s for k in METRICS},
                    'pretrain_wall_s': 1.0, 'pretrain_steps': 4}
                for s in (0, 1)}

    summary = summarize({'selfpatch': runs(12.0), 'dino': runs(11.0),
                         'random_init': runs(10.0)})
    assert set(summary['calibration']) == {'selfpatch - random_init',
                                           'dino - random_init'}
    for key in METRICS:
        assert summary['calibration']['selfpatch - random_init'][key][
            'mean'] == pytest.approx(2.0)
        assert summary['calibration']['dino - random_init'][key][
            'mean'] == pytest.approx(1.0)
        assert summary['differences']['selfpatch - dino'][key][
            'mean'] == pytest.approx(1.0)


def test_calibration_verdict_names_the_arms_that_fail() -> None:
    from projects.evidence_study.report import METRICS, summarize

    def runs(per_seed: dict) -> dict:
        return {s: {**{k: v for k in METRICS}, 'pretrain_wall_s': 1.0,
                    'pretrain_steps': 4} for s, v in per_seed.items()}

    summary = summarize({
        'selfpatch': runs({0: 12.0, 1: 13.0, 2: 12.5}),  # +2, +2.5, +2.5
        'dino': runs({0: 12.0, 1: 10.0, 2: 11.0}),  # +2, -0.5, +1: spans 0
        'random_init': runs({0: 10.0, 1: 10.5, 2: 10.0})})
    for key in METRICS:
        assert summary['calibrated'][key] == dict(clear=False,
                                                  not_clear=['dino'])
    one_seed = summarize({'selfpatch': runs({0: 12.0}),
                          'random_init': runs({0: 10.0})})
    assert one_seed['calibrated']['probe_miou'] == dict(clear=None,
                                                        not_clear=[])
    from projects.evidence_study.report import _markdown
    text = _markdown(summary, dict(seeds=[0, 1, 2], mode='full'))
    assert 'Calibrated (every pretrained arm above random init, 95% ' \
        'interval): linear-probe mIoU: no (dino);' in text, text


def test_summary_records_final_health_figures() -> None:
    from projects.evidence_study.report import (METRICS, _markdown,
                                                summarize)

    def run(seed: int, frac: float, ppl: float) -> dict:
        return {**{k: 10.0 for k in METRICS}, 'pretrain_wall_s': 1.0,
                'pretrain_steps': 4,
                'health': {'health/cls_entropy_frac': frac,
                           'health/cls_perplexity': ppl}}

    summary = summarize({
        'selfpatch': {0: run(0, 0.6, 100.0), 1: run(1, 0.8, 120.0)},
        'dino': {0: run(0, 0.99, 1.2), 1: run(1, 0.996, 1.0)},
        'random_init': {0: {**{k: 10.0 for k in METRICS},
                            'pretrain_wall_s': 0.0, 'pretrain_steps': 0}}})
    health = summary['arms']['selfpatch']['health']
    assert health['health/cls_entropy_frac']['values'] == [0.6, 0.8]
    assert health['health/cls_entropy_frac']['mean'] == pytest.approx(0.7)
    assert 'health' not in summary['arms']['random_init']
    md = _markdown(summary, dict(seeds=[0, 1], mode='full'))
    rows = {line.split(' | ')[0]: line for line in md.splitlines()
            if line.startswith('| selfpatch |') or line.startswith('| dino |')}
    assert rows['| selfpatch'].count('⚠') == 0, rows
    # near uniform (0.993 > 0.98) and one prototype (1.1 < 1.5)
    assert '0.993 ± 0.004 ⚠' in rows['| dino'], rows
    assert '1.1 ± 0.1 ⚠' in rows['| dino'], rows


def test_final_health_is_the_last_logged_value(tmp_path: Path) -> None:
    from projects.evidence_study.runs import final_health
    for stamp, rows in (('20260101_000000', [
            {'step': 20, 'health/cls_kl': 2.0, 'health/patch_kl': 3.0},
            {'step': 40, 'health/cls_kl': 1.5, 'loss': 6.0}]),
                        ('20260102_000000', [  # resumed
                            {'step': 60, 'health/cls_kl': 1.0}])):
        vis = tmp_path / stamp / 'vis_data'
        vis.mkdir(parents=True)
        (vis / 'scalars.json').write_text(
            ''.join(json.dumps(r) + '\n' for r in rows))
    assert final_health(str(tmp_path)) == {'health/cls_kl': 1.0,
                                           'health/patch_kl': 3.0}
    assert final_health(str(tmp_path / 'none')) == {}


@pytest.fixture(scope='module')
def small_world(tmp_path_factory) -> dict:
    """A tiny world and a random-init demo checkpoint, for the known
    answers of the study's metrics."""
    from helpers import DEMO_CONFIG

    from projects.evidence_study import WorldSpec, generate_world
    from projects.evidence_study.runs import save_random_init
    tmp = tmp_path_factory.mktemp('study_known')
    world = generate_world(str(tmp / 'world'), WorldSpec(
        seed=1, num_train=12, num_val=4, num_clips=1, clip_len=4,
        image_size=32))
    ckpt = save_random_init(DEMO_CONFIG, str(tmp / 'init.pth'), seed=0)
    return dict(world=world, config=DEMO_CONFIG, ckpt=ckpt, tmp=tmp)


def test_knn_top1_known_answers(small_world) -> None:
    """The study's k-NN top-1 with the training scenes as queries is 100
    (each query's nearest neighbour, k = 1, is itself); with every query
    moved to the next class's folder it is 0. A metric stuck at 0 (or any
    label mix-up) fails one of the two."""
    import shutil

    from projects.evidence_study.evals import ProbeSettings, knn_top1
    world, p = dict(small_world['world']), ProbeSettings(knn_k=1)
    world['knn_val'] = world['knn_train']
    assert knn_top1(small_world['config'], small_world['ckpt'], world,
                    p) == pytest.approx(100.0)
    names = sorted(c['name'] for c in world['classes'])
    moved = small_world['tmp'] / 'knn_moved'
    for i, name in enumerate(names):
        shutil.copytree(Path(world['knn_train']) / name,
                        moved / names[(i + 1) % len(names)])
    world['knn_val'] = str(moved)
    assert knn_top1(small_world['config'], small_world['ckpt'], world,
                    p) == 0.0


def test_davis_jf_known_answers(small_world, monkeypatch) -> None:
    """The study's J&F with a planted segmenter: the true masks give 100;
    the true masks on the first scored frame and empty ones on the second
    (of 2 scored frames: 4 frames less the first and the last) give 50
    (J and F are 1 and 0 there)."""
    from PIL import Image

    from selfpatch_mm.evaluation import davis_propagation
    from projects.evidence_study.evals import ProbeSettings, davis_jf
    from projects.evidence_study.runs import PretrainSettings
    world = small_world['world']
    ann_root = Path(world['davis']) / 'Annotations' / '480p'

    def planted(empty_from: int):

        def segment(seqs, img_root, ann, out_dir, *args, **kwargs):
            assert Path(ann) == ann_root
            for seq in seqs:
                (Path(out_dir) / seq).mkdir(parents=True)
                for t, src in enumerate(sorted((ann_root / seq).glob(
                        '*.png'))):
                    dst = Path(out_dir) / seq / src.name
                    if t < empty_from:
                        dst.write_bytes(src.read_bytes())
                    else:
                        label = np.array(Image.open(src))
                        assert label.max() > 0  # an object in every frame
                        Image.fromarray(np.zeros_like(label)).save(dst)

        return segment

    for empty_from, want in ((99, 100.0), (2, 50.0)):
        monkeypatch.setattr(davis_propagation, 'segment_davis',
                            planted(empty_from))
        got = davis_jf(small_world['config'], small_world['ckpt'], world,
                       str(small_world['tmp'] / f'davis_{empty_from}'),
                       ProbeSettings(), PretrainSettings())
        assert got == pytest.approx(want), empty_from
