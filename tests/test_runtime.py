"""runtime.py: precision and memory-format choices, BatchNorm folding, compile fallback, no host syncs."""
from __future__ import annotations

import collections
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

from featviz_cli import runtime as rt
from featviz_cli.config import json_schema, parse_spec
from featviz_cli.engine import render
from featviz_cli.errors import SpecError
from featviz_cli.hooks import forward_to

CUDA = torch.cuda.is_available()
cuda_only = pytest.mark.skipif(not CUDA, reason="needs CUDA")


# ---------------------------------------------------------------- spec options


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("precision", "fp64", "precision: 'fp64' is not one of auto, fp32, bf16, fp16"),
        ("channels_last", "yes", "channels_last: expected true/false or 'auto'"),
        ("channels_last", 1, "channels_last: expected true/false or 'auto'"),
        ("compile", "fast", "compile: expected true or false"),
    ],
)
def test_speed_options_are_validated(tiny_spec: dict[str, Any], key: str, value: Any, message: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_spec({**tiny_spec, key: value})
    assert str(e.value).startswith(message)


def test_speed_options_defaults_and_schema(tiny_spec: dict[str, Any]) -> None:
    spec = parse_spec(tiny_spec)
    assert (spec.precision, spec.channels_last, spec.compile) == ("auto", "auto", False)
    assert parse_spec({**tiny_spec, "channels_last": False, "compile": True}).channels_last is False
    props = json_schema()["properties"]
    assert props["compile"]["type"] == "boolean"
    assert {"type": "boolean"} in props["channels_last"]["anyOf"] and {"enum": ["auto"]} in props["channels_last"]["anyOf"]
    assert "AMX" in props["precision"]["description"]


def test_resolve_precision_rules() -> None:
    cpu = torch.device("cpu")
    assert rt.resolve_precision("fp32", cpu) is None
    assert rt.resolve_precision("bf16", cpu) is torch.bfloat16
    with pytest.raises(SpecError, match="^precision: fp16 needs a CUDA device"):
        rt.resolve_precision("fp16", cpu)
    # auto on the CPU follows the hardware: bf16 only with native bf16 units
    expected = torch.bfloat16 if rt.cpu_has_native_bf16() else None
    assert rt.resolve_precision("auto", cpu) is expected
    assert rt.resolve_precision("auto", torch.device("mps")) is None


def test_resolve_channels_last() -> None:
    assert rt.resolve_channels_last("auto", torch.device("cpu")) is True
    assert rt.resolve_channels_last("auto", torch.device("mps")) is False
    assert rt.resolve_channels_last(False, torch.device("cpu")) is False
    assert rt.resolve_channels_last(True, torch.device("mps")) is True


# ---------------------------------------------------------------- same images whatever the speed settings


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


# ---------------------------------------------------------------- BatchNorm folding


class _ConvBN(nn.Module):
    """conv -> bn -> relu -> conv -> bn, optionally with a skip taken BEFORE the second bn."""

    def __init__(self, pre_bn_skip: bool = False) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.pre_bn_skip = pre_bn_skip
        gen = torch.Generator().manual_seed(0)
        for bn in (self.bn1, self.bn2):  # non-trivial statistics, so a wrong fold shows
            bn.running_mean.copy_(torch.randn(8, generator=gen))
            bn.running_var.copy_(torch.rand(8, generator=gen) + 0.5)
            bn.weight.data.copy_(torch.rand(8, generator=gen) + 0.5)
            bn.bias.data.copy_(torch.randn(8, generator=gen))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.act(self.bn1(self.conv1(x))))
        return self.bn2(y) + y if self.pre_bn_skip else self.bn2(y)


def test_batchnorm_folding_keeps_outputs_and_restores_the_model() -> None:
    model = _ConvBN()
    x = torch.rand(2, 3, 8, 8)
    ref = forward_to(model, x, ["bn2"])["bn2"]
    weights = (model.conv1.weight, model.conv2.weight, model.conv2.bias)
    with rt.folded_batchnorm(model, ["bn2"], x[:1]) as folded:
        assert folded == ["bn1", "bn2"]
        assert isinstance(model.bn1, nn.Identity)
        assert torch.allclose(forward_to(model, x, ["bn2"])["bn2"], ref, atol=1e-5)
    assert isinstance(model.bn1, nn.BatchNorm2d) and isinstance(model.bn2, nn.BatchNorm2d)
    assert model.conv1.weight is weights[0] and model.conv2.weight is weights[1] and model.conv2.bias is weights[2]
    assert model.conv1.bias is None
    assert torch.equal(forward_to(model, x, ["bn2"])["bn2"], ref)


def test_batchnorm_folding_leaves_a_conv_the_objective_reads() -> None:
    model = _ConvBN()
    with rt.folded_batchnorm(model, ["conv2"], torch.rand(1, 3, 8, 8)) as folded:
        assert folded == ["bn1"]  # conv2 is read by the objective: its output must stay raw


def test_batchnorm_folding_is_refused_when_the_conv_output_is_used_elsewhere() -> None:
    model = _ConvBN(pre_bn_skip=True)
    x = torch.rand(2, 3, 8, 8)
    ref = model(x)
    with rt.folded_batchnorm(model, [rt.OUTPUT], x[:1]) as folded:
        assert folded == []  # the check caught that conv2's raw output feeds the skip
        assert torch.equal(model(x), ref)


def _render_lite0(layer: str, *, steps: int, precision: str) -> tuple[nn.Module, Any]:
    """A tiny render of a random-weight EfficientNet-Lite0 at 32 px; the model and the result."""
    from featviz_cli.models import load_model

    spec = parse_spec({"model": {"name": "efficientnet_lite0", "weights": "none", "input_size": 32},
                       "objective": {"type": "channel", "layer": layer, "unit": 0},
                       "param": {"size": 16}, "steps": steps, "device": "cpu", "precision": precision})
    model, info = load_model(spec.model)
    return model, render(spec, model=model, info=info)


def test_render_folds_batchnorm_and_reports_it() -> None:
    model, result = _render_lite0("_blocks.1", steps=1, precision="fp32")
    # the stem's _bn0, block 0's _bn1 and _bn2, block 1's _bn0, _bn1 and _bn2
    assert result.runtime["batchnorm_folded"] == 6
    assert all(isinstance(m, nn.BatchNorm2d) for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in ("_bn0", "_bn1", "_bn2"))


# ---------------------------------------------------------------- host syncs and helpers


def test_value_reader_and_to_device_on_the_cpu() -> None:
    reader = rt.ValueReader(torch.device("cpu"))
    assert reader.push(3, torch.tensor(1.5)) == (3, 1.5)
    assert reader.flush() is None
    t = torch.ones(3)
    assert rt.to_device(t, torch.device("cpu")) is t


@cuda_only
def test_value_reader_lags_one_report_on_cuda() -> None:
    reader = rt.ValueReader(torch.device("cuda"))
    assert reader.push(1, torch.tensor(1.0, device="cuda")) is None
    assert reader.push(2, torch.tensor(2.0, device="cuda")) == (1, 1.0)
    assert reader.flush() == (2, 2.0)


@cuda_only
def test_cuda_step_loop_syncs_do_not_grow_with_steps(tiny_spec: dict[str, Any]) -> None:
    spec = {**tiny_spec, "device": "cuda"}
    _render(spec, steps=2)  # warm: cuDNN autotuning, allocator, pinned memory

    def syncs(steps: int) -> collections.Counter[str]:
        """Where (file:line of the Python caller) each host-device sync of a render happened."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                render(parse_spec({**spec, "steps": steps}), progress=lambda *a: None, progress_every=1)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return collections.Counter(f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message))

    short, long = syncs(3), syncs(12)
    # On failure the message lists the places that synced more often in the longer render.
    assert sum(long.values()) <= sum(short.values()), dict(long - short)


@cuda_only
@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16", "fp32"])
def test_cuda_precisions_render_finite_images(tiny_spec: dict[str, Any], precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    r = _render({**tiny_spec, "device": "cuda"}, precision=precision)
    assert torch.isfinite(r.images).all() and r.runtime["channels_last"] is True
    assert r.precision == {"auto": "bfloat16" if torch.cuda.is_bf16_supported() else "float16",
                           "bf16": "bfloat16", "fp16": "float16", "fp32": "fp32"}[precision]


@cuda_only
def test_cudnn_autotune_is_restored() -> None:
    before = torch.backends.cudnn.benchmark
    with rt.cudnn_autotune(torch.device("cuda")):
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark is before


class _Depthwise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Conv2d(3, 8, 1)
        self.dw2 = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)  # strided depthwise
        self.dw1 = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # stride 1: left alone
        self.grouped = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2)  # grouped, not depthwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grouped(self.dw1(self.dw2(self.expand(x))))


def test_strided_depthwise_convs_are_found_by_shape() -> None:
    model = _Depthwise()
    assert rt.strided_depthwise_convs(model) == [model.dw2]


def test_strided_depthwise_runs_in_fp32_under_cpu_bf16_and_is_restored() -> None:
    model = _Depthwise().eval()
    x = torch.rand(2, 8, 16, 16)
    seen: list[torch.dtype] = []

    def conv_dtype(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        seen.append(out.dtype)

    with rt.fp32_strided_depthwise(model, torch.device("cpu"), torch.bfloat16) as n:
        assert n == 1 and "_conv_forward" in model.dw2.__dict__
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model.dw2(x.bfloat16())
        # computed in fp32 from the same bf16 input, handed on in the input's dtype
        want = nn.functional.conv2d(x.bfloat16().float(), model.dw2.weight, model.dw2.bias, 2, 1, 1, 8)
        assert y.dtype == torch.bfloat16 and torch.equal(y, want.bfloat16())
        handle = model.dw1.register_forward_hook(conv_dtype)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model.dw1(x)
        handle.remove()
        assert seen == [torch.bfloat16]  # the stride-1 depthwise conv still runs in bf16
    assert "_conv_forward" not in model.dw2.__dict__
    for device, dtype in ((torch.device("cpu"), None), (torch.device("meta"), torch.bfloat16)):
        with rt.fp32_strided_depthwise(model, device, dtype) as n:
            assert n == 0  # fp32 renders and other devices: unchanged


def test_render_reports_fp32_strided_depthwise_on_lite0() -> None:
    model, result = _render_lite0("_blocks.3", steps=2, precision="bf16")
    assert result.runtime["fp32_strided_depthwise"] == 4  # the depthwise convs of blocks 1, 3, 5 and 11 downsample
    assert torch.isfinite(result.images).all()
    assert all("forward" not in m.__dict__ and "_conv_forward" not in m.__dict__ for m in model.modules())


def test_tf_same_strided_depthwise_pads_in_bf16_and_convolves_in_fp32() -> None:
    from torch.overrides import TorchFunctionMode

    from featviz_cli.models.efficientnet_lite import Conv2dSame

    class Dtypes(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[str, torch.dtype]] = []

        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            name = getattr(func, "__name__", "")
            if name in ("pad", "conv2d"):
                self.seen.append((name, args[0].dtype))
            return func(*args, **(kwargs or {}))

    conv = Conv2dSame(8, 8, 3, stride=2, groups=8).eval()
    x = torch.rand(2, 8, 16, 16).bfloat16()  # 16 px, stride 2: TF pads (0, 1), asymmetric
    with rt.fp32_strided_depthwise(conv, torch.device("cpu"), torch.bfloat16) as n, Dtypes() as mode:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
    assert n == 1 and mode.seen == [("pad", torch.bfloat16), ("conv2d", torch.float32)]
    want = nn.functional.conv2d(nn.functional.pad(x.float(), (0, 1, 0, 1)), conv.weight, None, 2, 0, 1, 8)
    assert y.dtype == torch.bfloat16 and torch.equal(y, want.bfloat16())


def test_host_allocator_is_tuned_on_glibc_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform
    import sys

    tune = rt.tune_host_allocator.__wrapped__  # the cached function, called afresh
    monkeypatch.setenv(rt.SYSTEM_MALLOC_ENV, "1")
    assert tune() == "system"
    monkeypatch.delenv(rt.SYSTEM_MALLOC_ENV)
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert tune() == ("glibc: mmap above 32 MiB, trim above 2 GiB" if glibc else "system")


def test_render_reports_the_host_allocator(tiny_spec: dict[str, Any]) -> None:
    result = render(parse_spec({**tiny_spec, "steps": 1}))
    assert result.runtime["host_allocator"] == rt.tune_host_allocator()
