"""matmul_rate: the product grows from 256 and stops once one product takes
an eighth of the budget (a CPU without native bf16 needed minutes for a
2048 product). A fake clock makes every product take a known time."""
import pytest
import torch

from pretrain_benchmark import timing


@pytest.fixture
def clock_and_sizes(monkeypatch):
    """Install a clock that advances ``step[0]`` per reading; record the
    sizes of the operands drawn."""
    now, step, sizes = [0.0], [0.0], []

    def perf_counter() -> float:
        now[0] += step[0]
        return now[0]

    real_randn = torch.randn

    def randn(*shape, **kwargs):
        sizes.append(shape[0])
        return real_randn(*shape, **kwargs)

    monkeypatch.setattr(timing.time, 'perf_counter', perf_counter)
    monkeypatch.setattr(timing.torch, 'randn', randn)
    return step, sizes


def test_slow_product_stops_the_growth(clock_and_sizes):
    step, sizes = clock_and_sizes
    step[0] = 1.0  # every product 'takes' the whole budget
    rate = timing.matmul_rate('cpu', torch.float32, n=2048, seconds=1.0)
    assert sizes == [256, 256]
    # one check of 4 products after 1.0 s
    assert rate == 2 * 256**3 * 4 / 1.0


def test_fast_products_grow_to_n(clock_and_sizes):
    step, sizes = clock_and_sizes
    # 1/16 s per reading: exactly seconds / 8, which does not stop it
    step[0] = 0.0625
    rate = timing.matmul_rate('cpu', torch.float32, n=512, seconds=0.5)
    assert sizes == [256, 256, 512, 512]
    # 8 checks of 4 products reach the 0.5 s budget
    assert rate == 2 * 512**3 * 32 / 0.5
