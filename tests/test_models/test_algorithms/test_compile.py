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

LR = 1e-3  # a small step: the second step sees a trained but similar model
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
                p.add_(p.grad, alpha=-LR)
    model.update_teacher(0.9)
    return {k: v.detach() for k, v in losses.items() if 'loss' in k}, grads


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def _zero_grad_params(grads: dict, total: torch.Tensor) -> set:
    """The keys' biases of the class attention: their gradient is exactly
    zero (they shift all of a query's logits alike, which the softmax
    ignores), so both steps give rounding noise there."""
    zero = {n for n in grads if n.endswith('attn.k.bias')}
    assert len(zero) == 2 and all(grads[n].norm() < 1e-6 * total
                                  for n in zero)
    return zero


def _assert_close_step(got, got_g, want, want_g, loss_tol):
    assert want.keys() == got.keys() == {'loss_cls', 'loss_patch'}
    for k in want:
        assert abs(float(got[k] / want[k]) - 1) < loss_tol[k], \
            (k, got, want)
    assert want_g.keys() == got_g.keys()
    total = torch.cat([g.flatten() for g in want_g.values()]).norm()
    zero = _zero_grad_params(want_g, total)
    bad = {n: _rel(got_g[n], g) for n, g in want_g.items()
           if n not in zero and _rel(got_g[n], g) > 1e-4}
    assert bad == {}
    # the zero-gradient noise, against the whole gradient
    assert all((got_g[n] - want_g[n]).norm() < 1e-6 * total for n in zero)


@pytest.mark.slow
def test_compiled_step_matches_eager():
    cfg = Config.fromfile(DEMO).model
    torch.manual_seed(0)
    eager = MODELS.build(cfg)
    eager.init_weights()
    eager.train()
    keys = list(eager.state_dict())
    # fallback_random: inductor draws the student's drop-path masks with
    # eager's generator, so all models drop the same paths.
    options = dict(options=dict(fallback_random=True))
    compiled = copy.deepcopy(eager)
    before = compile_counts()
    assert compiled.compile_parts(**options) == [
        'backbone', 'teacher.backbone', 'neck', 'teacher.neck', 'head',
        'teacher.head', 'patch_head', 'teacher.patch_head'
    ]
    # losses=True adds the loss modules, whose fused patch cross-entropy
    # sums its B*N*K terms in another order: 1e-5 of the patch loss, which
    # the 0.04 teacher temperature and a sum of large terms of both signs
    # make visible (measured 1.0e-5 and 6e-6 on these two steps; the parts
    # alone: < 1e-6)
    with_losses = copy.deepcopy(eager)
    assert with_losses.compile_parts(losses=True, **options)[-2:] == [
        'head.loss_module', 'patch_head.loss_module'
    ]
    for it in range(2):
        # each step from the same state (fp32 rounding differences of a
        # step would otherwise grow through the next one); loading copies
        # in place, so the compiled parts keep their graphs
        for model in (compiled, with_losses):
            model.load_state_dict(eager.state_dict())
        views = _views(it)
        want, want_g = _step(eager, views, seed=10 + it)
        got, got_g = _step(compiled, views, seed=10 + it)
        _assert_close_step(got, got_g, want, want_g,
                           dict(loss_cls=1e-5, loss_patch=1e-5))
        got, got_g = _step(with_losses, views, seed=10 + it)
        _assert_close_step(got, got_g, want, want_g,
                           dict(loss_cls=1e-5, loss_patch=3e-5))
        counts = compile_counts()
        if it == 0:
            # backbone and neck: 2 nets x 2 crop sizes; one call per head
            # and net (all crops at once); 2 loss graphs for with_losses,
            # whose parts reuse the first model's graphs (the parameters
            # are graph inputs, the guards on the modules' structure pass)
            assert counts['graphs'] - before['graphs'] == 4 + 4 + 2 + 2 + 2
            assert counts['graph_breaks'] == before['graph_breaks']
            first = counts
        else:
            assert counts == first  # the second step compiles nothing
    # the EMA moved the compiled teacher as the eager one (the keys'
    # biases hold only the noise of their zero gradients: ~1e-14)
    for (n, a), b in zip(eager.teacher.named_parameters(),
                         compiled.teacher.parameters()):
        if not n.endswith('attn.k.bias'):
            assert _rel(b, a) < 1e-5, n
    # compiled in place: no `_orig_mod.` keys, loads into an eager model
    assert list(compiled.state_dict()) == keys
    eager.load_state_dict(compiled.state_dict(), strict=True)


def test_compile_parts_refuses_unknown_parts():
    model = MODELS.build(Config.fromfile(DEMO).model)
    with pytest.raises(ValueError, match=r"\['neckk'\] are not parts"):
        model.compile_parts(['backbone', 'neckk'])
