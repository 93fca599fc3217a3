"""redirect.py: Lucid's redirected ReLU gradient, and swapping module forwards safely (its use in a render: test_engine)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from featviz_cli.redirect import redirected_relu, redirected_relu6, redirected_relus, relu_modules


def _grad(fn, x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    fn(x).backward(upstream)
    return x.grad


def test_forward_is_unchanged() -> None:
    x = torch.linspace(-8, 8, 33).view(1, -1)
    assert torch.equal(redirected_relu(x), torch.relu(x))
    assert torch.equal(redirected_relu6(x), nn.functional.relu6(x))


def test_ordinary_gradient_when_some_passes() -> None:
    x = torch.tensor([[-1.0, 2.0, -3.0]])
    g = torch.tensor([[-1.0, -1.0, 1.0]])
    assert torch.equal(_grad(redirected_relu, x, g), torch.tensor([[0.0, -1.0, 0.0]]))


def test_redirected_gradient_when_a_batch_element_is_dead() -> None:
    x = torch.tensor([[-1.0, -2.0, -3.0], [1.0, -1.0, 2.0]])
    g = torch.tensor([[-1.0, 1.0, -2.0], [1.0, -1.0, 1.0]])
    got = _grad(redirected_relu, x, g)
    # element 0 is all off: gradients that raise x (negative, since the loss is minimized) pass;
    # one that would push it further down is dropped. Element 1 gets the ordinary gradient.
    assert torch.equal(got, torch.tensor([[-1.0, 0.0, -2.0], [1.0, 0.0, 1.0]]))


def test_relu6_redirects_at_both_bounds() -> None:
    x = torch.tensor([[-1.0, 7.0, -2.0, 8.0]])
    g = torch.tensor([[-1.0, 1.0, 1.0, -1.0]])
    assert torch.equal(_grad(redirected_relu6, x, g), torch.tensor([[-1.0, 1.0, 0.0, 0.0]]))


def _lucid_reference(x: torch.Tensor, g: torch.Tensor, hi: float | None) -> torch.Tensor:
    """The redirected gradient written out plainly, every term computed (the slow, obvious form)."""
    off_low, off_high = x <= 0, (x >= hi) if hi is not None else torch.zeros_like(x, dtype=torch.bool)
    ordinary = torch.where(off_low | off_high, torch.zeros_like(g), g)
    outward = (off_low & (g > 0)) | (off_high & (g < 0))
    redirected = torch.where(outward, torch.zeros_like(g), g)
    alive = ordinary.reshape(len(x), -1).abs().amax(1) > 0
    return torch.where(alive.view(-1, *[1] * (x.dim() - 1)), ordinary, redirected)


@pytest.mark.parametrize("fn,hi", [(redirected_relu, None), (redirected_relu6, 6.0)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_the_plain_formula_in_every_layout(fn, hi, channels_last: bool, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(5, 3, 4, 6, generator=gen) * 4).to(dtype)
    x[1] = -torch.rand(3, 4, 6, generator=gen).to(dtype) - 0.5  # element 1 all off: redirected
    g = torch.randn(5, 3, 4, 6, generator=gen).to(dtype)
    x[3], g[3] = 1.0, 0.0  # element 3 on but no gradient arrives: redirected too (nothing to redirect)
    if channels_last:
        x, g = x.contiguous(memory_format=torch.channels_last), g.contiguous(memory_format=torch.channels_last)
    got = _grad(fn, x, g)
    assert torch.equal(got, _lucid_reference(x, g, hi))
    assert not torch.equal(got[1], torch.zeros_like(got[1]))


@pytest.mark.parametrize("fn", [redirected_relu, redirected_relu6])
def test_inplace_gives_the_same_values_and_gradients(fn) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 5, 5, generator=gen) * 5
    x[2] = -1.0  # one dead element
    g = torch.randn(4, 3, 5, 5, generator=gen)
    leaf = x.clone().requires_grad_(True)
    inner = leaf * 1.0  # a non-leaf, as inside a network
    out = fn(inner, inplace=True)
    assert out.data_ptr() == inner.data_ptr()  # no new tensor, like nn.ReLU(inplace=True)
    out.backward(g)
    assert torch.equal(out, fn(x)) and torch.equal(leaf.grad, _grad(fn, x, g))


def test_a_row_whose_gradient_sums_to_zero_is_still_alive() -> None:
    # The quick test (a nonzero row sum) cannot see that this row passes gradient; the exact one must.
    x = torch.tensor([[1.0, 2.0, -3.0], [-1.0, -2.0, -3.0]])
    g = torch.tensor([[1.0, -1.0, -5.0], [-1.0, 1.0, -2.0]])
    got = _grad(redirected_relu, x, g)
    assert torch.equal(got, torch.tensor([[1.0, -1.0, 0.0], [-1.0, 0.0, -2.0]]))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.ReLU(inplace=True)
        self.b = nn.ReLU6()
        self.c = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.b(self.a(x)))


def test_swaps_relu_modules_and_always_restores_them() -> None:
    net = Net()
    assert relu_modules(net) == [net.a, net.b]
    with redirected_relus(net) as n:
        assert n == 2 and net.a.forward.func is redirected_relu and net.b.forward.func is redirected_relu6
        x = torch.full((1, 3), -1.0, requires_grad=True)
        (-net(x.clone()).sum()).backward()  # minimizing the loss raises the output
        assert x.grad.abs().sum() > 0  # dead for the plain ReLU, alive when redirected
    assert "forward" not in net.a.__dict__ and "forward" not in net.b.__dict__
    with pytest.raises(RuntimeError, match="boom"):
        with redirected_relus(net):
            raise RuntimeError("boom")
    assert "forward" not in net.a.__dict__
    x = torch.full((1, 3), -1.0, requires_grad=True)
    (-net(x.clone()).sum()).backward()
    assert x.grad.abs().sum() == 0
