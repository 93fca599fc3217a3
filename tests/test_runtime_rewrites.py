"""runtime/rewrites.py: BatchNorm folding and fp32 strided depthwise convolutions, each restored on exit."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from featviz_cli import runtime as rt
from featviz_cli.config import parse_spec
from featviz_cli.engine import render
from featviz_cli.hooks import OUTPUT, forward_to


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
    with rt.folded_batchnorm(model, [OUTPUT], x[:1]) as folded:
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


# ---------------------------------------------------------------- strided depthwise convolutions in fp32


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


def test_kept_memory_format_puts_every_weight_back_in_its_layout() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1))  # a 1x1 kernel: contiguous in both layouts
    before = [p.stride() for p in model.parameters()]
    with rt.kept_memory_format(model):
        model.to(memory_format=torch.channels_last)
        assert [p.stride() for p in model.parameters()] != before
    assert [p.stride() for p in model.parameters()] == before


def test_a_channels_last_render_leaves_the_model_computing_bit_for_bit_as_before(tiny_model: Any) -> None:
    model, info = tiny_model
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(x)
    spec = parse_spec({"model": {"name": "test_tiny"}, "objective": {"type": "channel", "layer": "act2", "unit": 1},
                       "param": {"size": 16}, "steps": 2, "device": "cpu", "channels_last": True})
    assert render(spec, model=model, info=info).runtime["channels_last"] is True
    with torch.no_grad():
        assert torch.equal(model(x), expected)
