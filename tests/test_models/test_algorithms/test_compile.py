"""torch.compile of SelfPatch's parts (``compile_parts``, which
``CompileHook`` calls): a compiled step gives the eager step's losses and
gradients, the EMA moves the compiled teacher, the state dict keeps its
keys, and the graphs are one per part, net and crop resolution.

Compiling the demo model takes a minute or more on 2 cores (less when
inductor's on-disk cache already holds its kernels)."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import selfpatch_mm.models  # noqa: F401
from selfpatch_mm.models.utils import compile_counts

DEMO = 'configs/selfpatch/selfpatch_vit-tiny-p8_1xb8-2e_demo.py'


def _views(seed: int, b: int = 2):
    """The demo's crops: 2 global at 64 pixels, 4 local at 32."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3, 64, 64, generator=g) for _ in range(2)] + \
        [torch.randn(b, 3, 32, 32, generator=g) for _ in range(4)]


def _step(model, views, seed: int):
    """Losses and student gradients of one step, then an SGD update and
    the EMA update (the same drop-path draws in both models: ``seed``)."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    losses = model.loss(views, None)
    (losses['loss_cls'] + losses['loss_patch']).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()
             if p.grad is not None}
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p.add_(p.grad, alpha=-0.1)
    model.update_teacher(0.9)
    return {k: v.detach() for k, v in losses.items() if 'loss' in k}, grads


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@pytest.mark.slow
def test_compiled_step_matches_eager():
    cfg = Config.fromfile(DEMO).model
    torch.manual_seed(0)
    eager = MODELS.build(cfg)
    eager.init_weights()
    eager.train()
    compiled = copy.deepcopy(eager)
    keys = list(eager.state_dict())
    # fallback_random: inductor draws the student's drop-path masks with
    # eager's generator, so both models drop the same paths.
    names = compiled.compile_parts(
        losses=True, options=dict(fallback_random=True))
    assert names == [
        'backbone', 'teacher.backbone', 'neck', 'teacher.neck', 'head',
        'teacher.head', 'patch_head', 'teacher.patch_head',
        'head.loss_module', 'patch_head.loss_module'
    ]
    before = compile_counts()
    for it in range(2):
        views = _views(it)
        want, want_g = _step(eager, views, seed=10 + it)
        got, got_g = _step(compiled, views, seed=10 + it)
        counts = compile_counts()
        if it == 0:
            # 4 parts x 2 nets x 2 crop sizes, but one head graph per net
            # (all crops' [CLS] tokens in one call) and per patch head; a
            # graph per loss
            assert counts['graphs'] - before['graphs'] == 4 + 4 + 2 + 2 + 2
            assert counts['graph_breaks'] == before['graph_breaks']
            first = counts
        else:
            assert counts == first  # the second step compiles nothing
        assert want.keys() == got.keys() == {'loss_cls', 'loss_patch'}
        for k in want:
            assert abs(float(got[k] / want[k]) - 1) < 1e-5, (k, got, want)
        assert want_g.keys() == got_g.keys()
        bad = {n: _rel(got_g[n], g) for n, g in want_g.items()
               if _rel(got_g[n], g) > 1e-4}
        assert bad == {}
    # the EMA moved the compiled teacher as the eager one
    for (n, a), b in zip(eager.teacher.named_parameters(),
                         compiled.teacher.parameters()):
        assert _rel(b, a) < 1e-5, n
    # compiled in place: no `_orig_mod.` keys, loads into an eager model
    assert list(compiled.state_dict()) == keys
    eager.load_state_dict(compiled.state_dict(), strict=True)


def test_compile_parts_refuses_unknown_parts():
    model = MODELS.build(Config.fromfile(DEMO).model)
    with pytest.raises(ValueError, match=r"\['neckk'\] are not parts"):
        model.compile_parts(['backbone', 'neckk'])
