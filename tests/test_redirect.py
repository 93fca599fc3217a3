"""Lucid's redirected ReLU gradient: its semantics, swapping module forwards safely, the engine's use."""
from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn

from featviz_cli.config import parse_spec
from featviz_cli.engine import render
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
        assert n == 2 and net.a.forward is redirected_relu and net.b.forward is redirected_relu6
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


def test_engine_redirects_only_the_first_steps(tiny_spec: dict[str, Any], tiny_model, monkeypatch) -> None:
    model, info = tiny_model
    import featviz_cli.engine as engine

    calls: list[bool] = []
    real = engine.redirected_relus

    def spy(m: nn.Module):
        calls.append(True)
        return real(m)

    monkeypatch.setattr(engine, "redirected_relus", spy)
    result = render(parse_spec({**tiny_spec, "steps": 6, "relu_redirect": 4}), model=model, info=info)
    assert len(calls) == 4
    assert result.techniques["relu_redirect"] == {"steps": 4, "modules": 3}
    assert all("forward" not in m.__dict__ for m in relu_modules(model))


def test_redirect_wakes_units_that_are_dead_at_the_start(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    # A channel of act2 that is exactly 0 for the grey start: without the redirect it never moves.
    data = {**tiny_spec, "objective": {"type": "channel", "layer": "act2", "units": list(range(16))},
            "param": {"size": 16, "sd": 1e-6}, "transforms": "none", "steps": 12}
    off = render(parse_spec({**data, "relu_redirect": 0}), model=model, info=info)
    on = render(parse_spec({**data, "relu_redirect": 8}), model=model, info=info)
    dead = [i for i, v in enumerate(off.values) if v == 0.0]
    assert dead, "expected some dead units in the tiny model"
    assert any(on.values[i] > 0 for i in dead)
    assert sum(on.values) > sum(off.values)
