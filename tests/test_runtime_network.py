"""runtime/network.py: the truncated network; channels_last, bf16 and compile change speed, not the images."""
from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn

from featviz_cli import runtime as rt
from featviz_cli.config import parse_spec
from featviz_cli.engine import render
from featviz_cli.hooks import forward_to


def _render(spec: dict[str, Any], **kw: Any):
    return render(parse_spec({**spec, **kw}))


def test_channels_last_gives_the_same_images(tiny_spec: dict[str, Any]) -> None:
    spec = {**tiny_spec, "precision": "fp32", "steps": 6}
    a = _render(spec, channels_last=False)
    b = _render(spec, channels_last=True)
    assert a.runtime["channels_last"] is False and b.runtime["channels_last"] is True
    assert torch.allclose(a.images, b.images, atol=1e-4)
    assert a.values == pytest.approx(b.values, rel=1e-4, abs=1e-5)


def test_bf16_on_cpu_renders_close_to_fp32(tiny_spec: dict[str, Any]) -> None:
    spec = {**tiny_spec, "steps": 6, "channels_last": False}
    a = _render(spec, precision="fp32")
    b = _render(spec, precision="bf16")
    assert b.precision == "bfloat16" and a.precision == "fp32"
    assert torch.isfinite(b.images).all() and not torch.equal(a.images, b.images)  # bf16 really ran
    # Adam's normalized steps turn bf16 rounding into visible-in-numbers but small pixel changes
    # (about 2 of 255 levels here); the objective climbs about as far.
    assert float((a.images - b.images).abs().mean()) * 255 < 8.0
    assert b.values == pytest.approx(a.values, rel=0.1)


# ---------------------------------------------------------------- compile


def test_compile_falls_back_to_eager_when_the_compiler_fails(tiny_spec: dict[str, Any], monkeypatch) -> None:
    def broken_compile(module: nn.Module, **_: Any):
        def run(*args: Any, **kw: Any):
            raise RuntimeError("no C++ compiler found\nsecond line")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    eager = _render(tiny_spec, precision="fp32")
    fallback = _render(tiny_spec, precision="fp32", compile=True)
    assert fallback.runtime["compiled"] is False
    assert fallback.runtime["notes"] == ["compile: failed (RuntimeError: no C++ compiler found); ran eager"]
    assert "compile_s" in fallback.timings and "compile_s" not in eager.timings
    assert torch.equal(eager.images, fallback.images)


def test_compile_traces_the_truncated_network_and_matches_eager(tiny_spec: dict[str, Any], monkeypatch) -> None:
    # The 'eager' backend runs dynamo's tracing without generating code: fast, and enough to
    # check that the truncated module is what gets compiled and computes the same thing.
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda m, **kw: real(m, backend="eager"))
    eager = _render(tiny_spec, precision="fp32")
    compiled = _render(tiny_spec, precision="fp32", compile=True)
    assert compiled.runtime["compiled"] is True
    assert compiled.runtime["notes"] == ["compile: torch.compile of the truncated network"]
    assert torch.allclose(eager.images, compiled.images, atol=1e-5)


def test_truncated_module_stops_at_the_layer(tiny_model) -> None:
    model, _ = tiny_model
    module = rt.truncated_module(model, ["act2"])
    x = torch.rand(2, 3, 32, 32)
    out = module(x)
    assert list(out) == ["act2"]
    assert torch.allclose(out["act2"], forward_to(model, x, ["act2"])["act2"])
    called = [n.target for n in module.graph.nodes if n.op == "call_module"]
    assert "conv3" not in called and "fc" not in called


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            return self.conv(x)
        return self.conv(-x)


def test_compile_of_an_untraceable_model_runs_eager_with_a_note() -> None:
    net = rt.Network(_Untraceable(), ["conv"], torch.device("cpu"), compile=True)
    assert net.compiled is None
    assert net.notes and net.notes[0].startswith("compile: the model does not trace with torch.fx")
    assert net(torch.rand(1, 3, 8, 8))["conv"].shape == (1, 4, 8, 8)
