"""The teacher built from the config (no deep copy, no loss hack), and the
standard DINO algorithm against the official DINO formulas."""
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.registry import MODELS

import selfpatch_mm  # noqa: F401
from selfpatch_mm.models.backbones import SelfPatchViT, interpolate_pos_embed

DEMO = 'configs/selfpatch/selfpatch_vit-tiny-p8_1xb8-2e_demo.py'
DINO = 'configs/selfpatch/dino_vit-small-p16_8xb64-coslr-100e_in1k.py'
ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def _tiny_dino():
    cfg = Config.fromfile(DINO).model
    cfg.backbone.update(arch=ARCH, img_size=32, patch_size=8)
    cfg.head.update(in_channels=32, out_channels=64, hidden_channels=64,
                    bottleneck_channels=16)
    cfg.head.loss.out_channels = 64
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_teacher_is_built_from_the_config_without_losses():
    cfg = Config.fromfile(DEMO).model
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    after_build = torch.rand(1)
    for name in ('head', 'patch_head'):
        assert model.teacher[name].loss_module is None
        assert model.__getattr__(name).loss_module is not None
    # No None sub-modules: mmengine's complexity printer walks them all.
    assert all(m is not None for m in model.modules())
    # Official teacher: no stochastic depth, whatever the student's.
    rates = {getattr(m, 'drop_prob', 0.0)
             for m in model.teacher.backbone.modules()}
    assert rates <= {0.0}
    assert max(getattr(m, 'drop_prob', 0.0)
               for m in model.backbone.modules()) > 0
    # Building the teacher does not move the global generator: the same
    # draws follow as after building the student parts alone.
    torch.manual_seed(0)
    for part in ('backbone', 'neck', 'head', 'patch_head'):
        MODELS.build(cfg[part])
    MODELS.build(cfg.data_preprocessor)
    assert torch.equal(torch.rand(1), after_build)


def test_dino_teacher_and_keys():
    model = _tiny_dino()
    assert list(model.teacher) == ['backbone', 'head']
    assert model.neck is None and not hasattr(model, 'patch_head')
    student = model._student_params()
    teacher = list(model.teacher.parameters())
    assert len(student) == len(teacher)
    assert all(torch.equal(s, t) for s, t in zip(student, teacher))
    assert 'backbone.cls_token' in model.state_dict()


def _official_dino_loss(student_out, teacher_out, center, ncrops,
                        student_temp=0.1, teacher_temp=0.04):
    """facebookresearch/dino main_dino.py ``DINOLoss.forward``."""
    student_out = (student_out / student_temp).chunk(ncrops)
    teacher_out = F.softmax((teacher_out - center) / teacher_temp,
                            dim=-1).detach().chunk(2)
    total, n = 0, 0
    for iq, q in enumerate(teacher_out):
        for v in range(len(student_out)):
            if v == iq:
                continue
            total += torch.sum(-q * F.log_softmax(student_out[v], dim=-1),
                               dim=-1).mean()
            n += 1
    return total / n


def test_dino_loss_is_the_official_one():
    model = _tiny_dino().eval()  # no drop-path: both passes agree
    torch.manual_seed(1)
    views = [torch.randn(3, 3, 32, 32) for _ in range(2)] + \
        [torch.randn(3, 3, 16, 16) for _ in range(2)]
    center = model.head.loss_module.center.clone()
    with torch.no_grad():
        # official MultiCropWrapper: one backbone pass per resolution
        t = model.teacher.head(model.teacher.backbone(torch.cat(views[:2]))[0])
        s = torch.cat([model.backbone(torch.cat(views[:2]))[0],
                       model.backbone(torch.cat(views[2:]))[0]])
        s = model.head(s)
        expected = _official_dino_loss(s, t, center, ncrops=4)
        ours = model.loss(views, None)['loss_cls']
    torch.testing.assert_close(ours, expected)
    # Centre: EMA of the teacher's global-view outputs only.
    torch.testing.assert_close(model.head.loss_module.center,
                               center * 0.9 + t.mean(0, keepdim=True) * 0.1)


def test_cls_token_vit_is_dino_vit():
    vit = SelfPatchViT(arch=ARCH, img_size=224, patch_size=16,
                       with_cls_token=True, final_norm=True,
                       out_type='raw')
    vit.init_weights()
    assert vit.cls_token.abs().sum() > 0  # trunc_normal(0.02), as DINO
    x = torch.randn(2, 3, 96, 96)
    tokens, _ = vit.patch_embed(x)
    ours = vit._add_pos_embed(tokens, (6, 6))
    # DINO's interpolate_pos_encoding: the [CLS] position as is, the patch
    # positions by the official formula (interpolate_pos_embed, tested
    # against the official code in test_selfpatch_vit.py).
    torch.testing.assert_close(
        ours[:, 0], (vit.cls_token + vit.pos_embed[:, :1])[:, 0].expand(2, -1))
    torch.testing.assert_close(
        ours[:, 1:],
        tokens + interpolate_pos_embed(vit.pos_embed[:, 1:], (14, 14),
                                       (6, 6)))
    out = vit(x)[-1]
    assert out.shape == (2, 37, 32)
    vit.out_type = 'cls_token'
    torch.testing.assert_close(vit(x)[-1], out[:, 0])
