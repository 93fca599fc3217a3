"""The engine: the Python API, truncation during a render, penalties, snapshots, devices, NaN."""
from __future__ import annotations

from typing import Any

import pytest
import torch

import featviz_cli
from featviz_cli.config import parse_spec
from featviz_cli.engine import render
from featviz_cli.models.preprocess import Preprocess
from featviz_cli.runtime import pick_device, resolve_precision as pick_precision
from featviz_cli.errors import LayerError, OptimizationError, SpecError
from featviz_cli.models import ModelInfo


def test_api_render_returns_images_and_writes_nothing(tiny_spec: dict[str, Any], tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = featviz_cli.render(tiny_spec)
    assert result.images.shape == (1, 3, 16, 16)
    assert 0 <= result.images.min() and result.images.max() <= 1
    assert result.labels == ["act2:3"] and len(result.values) == 1
    assert len(result.curve) == 4 and result.description == "channel act2:3"
    assert list(tmp_path.iterdir()) == []


def test_later_layers_never_run_during_a_render(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    calls: list[str] = []
    model.conv3.register_forward_hook(lambda *_: calls.append("conv3"))
    model.conv2.register_forward_hook(lambda *_: calls.append("conv2"))
    render(parse_spec(tiny_spec), model=model, info=info)
    assert "conv3" not in calls and calls.count("conv2") == 4 + 1  # 4 steps + final evaluation


def test_model_is_frozen_no_weight_gradients(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    before = [p.clone() for p in model.parameters()]
    render(parse_spec(tiny_spec), model=model, info=info)
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_same_seed_same_images_other_seed_differs(tiny_spec: dict[str, Any]) -> None:
    a, b = render(parse_spec(tiny_spec)), render(parse_spec(tiny_spec))
    assert torch.equal(a.images, b.images)
    c = render(parse_spec({**tiny_spec, "seed": 1}))
    assert not torch.equal(a.images, c.images)


def test_total_variation_penalty_smooths(tiny_spec: dict[str, Any]) -> None:
    def tv(x: torch.Tensor) -> float:
        return float((x[..., 1:] - x[..., :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean())

    base = {**tiny_spec, "steps": 20, "param": {"type": "pixel", "size": 16, "sd": 0.5}}
    plain = render(parse_spec(base))
    smooth = render(parse_spec({**base, "regularizers": {"tv": 50.0}}))
    assert tv(smooth.images) < 0.8 * tv(plain.images)


def test_thresholds_snapshot(tiny_spec: dict[str, Any]) -> None:
    r = render(parse_spec({**tiny_spec, "thresholds": [2, 4]}))
    assert sorted(r.snapshots) == [2, 4]
    assert torch.equal(r.snapshots[4], r.images)
    assert not torch.equal(r.snapshots[2], r.images)


def test_blur_every_runs(tiny_spec: dict[str, Any]) -> None:
    a = render(parse_spec(tiny_spec))
    b = render(parse_spec({**tiny_spec, "regularizers": {"blur_every": 2, "blur_sigma": 1.0}}))
    assert not torch.equal(a.images, b.images)


def test_unit_out_of_range_names_field(tiny_spec: dict[str, Any]) -> None:
    with pytest.raises(LayerError, match=r"objective.unit: unit 16 .*0\.\.15"):
        render(parse_spec({**tiny_spec, "objective": {"type": "channel", "layer": "act2", "unit": 16}}))


def test_nan_is_an_optimization_error(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    model.conv1.register_forward_hook(lambda _m, _i, out: out * float("nan"))
    with pytest.raises(OptimizationError, match=r"became nan at step 1; lower optimizer.lr"):
        render(parse_spec({**tiny_spec, "steps": 6}), model=model, info=info, progress_every=1)


def test_devices() -> None:
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert pick_device("auto").type in ("cpu", "mps")
        with pytest.raises(SpecError, match="device"):
            pick_device("cuda:0")
    # issue 5: auto is bf16 on CPUs with native bf16 (AMX / AVX-512 BF16), fp32 on others (BENCHMARKS.md)
    from featviz_cli.runtime import cpu_has_native_bf16

    assert pick_precision("auto", torch.device("cpu")) is (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert pick_precision("bf16", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(SpecError, match="precision"):
        pick_precision("fp16", torch.device("cpu"))


def test_bf16_on_cpu_still_rises(tiny_spec: dict[str, Any]) -> None:
    r = render(parse_spec({**tiny_spec, "precision": "bf16", "steps": 10}))
    assert r.precision == "bfloat16" and r.curve[-1] > r.curve[0]


def test_preprocess_maps_value_range_and_normalizes() -> None:
    info = ModelInfo(name="x", mean=(127.0,) * 3, std=(128.0,) * 3, value_range=(0.0, 255.0))
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    y = Preprocess(info)(x)
    assert torch.allclose(y[0, 0, 0], (torch.tensor([0.0, 127.5, 255.0]) - 127) / 128)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_render_matches_shapes(tiny_spec: dict[str, Any]) -> None:
    r = render(parse_spec({**tiny_spec, "device": "cuda"}))
    assert r.device.startswith("cuda") and r.images.device.type == "cpu"


class _TinyViT(torch.nn.Module):
    """Patch embedding + one transformer layer: activations of shape (B, tokens, C)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patch = torch.nn.Conv2d(3, 16, 8, stride=8)
        self.block = torch.nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0)
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        return self.head(self.block(tokens).mean(1))


@pytest.mark.parametrize("kind", ["channel", "neuron"])
def test_token_layers_of_vision_transformers(kind: str) -> None:
    model = _TinyViT().eval()
    info = ModelInfo(name="vit", input_size=32)
    spec = parse_spec({"objective": {"type": kind, "layer": "block", "unit": 3}, "param": {"size": 16},
                       "steps": 15, "device": "cpu"})
    r = render(spec, model=model, info=info)
    assert r.curve[-1] > r.curve[0]


def _input_gradient_support(model: torch.nn.Module, layer: str, unit: int, size: int) -> torch.Tensor:
    """(size, size) mask of the pixels whose gradient can reach ``layer``'s unit at position (0, 0): brute force."""
    from featviz_cli.hooks import forward_to

    support = torch.zeros(size, size, dtype=torch.bool)
    for seed in range(4):
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed), requires_grad=True)
        forward_to(model, x, [layer])[layer][0, unit, 0, 0].backward()
        support |= x.grad[0].abs().sum(0) > 0
    return support


@pytest.mark.parametrize("param", ["fft", "pixel", "maco", "cppn"])
def test_alpha_map_is_in_unit_range_and_largest_where_the_gradient_was(tiny_spec: dict[str, Any], tiny_model,
                                                                     param: str) -> None:
    model, info = tiny_model
    spec = parse_spec({**tiny_spec, "objective": {"type": "neuron", "layer": "act2", "unit": 3, "x": 0, "y": 0},
                       "param": {"type": param, "size": 32, "batch": 2}, "transforms": "none", "steps": 6,
                       "output": {"alpha": True}})
    result = render(spec, model=model, info=info)
    alpha = result.alpha
    assert alpha is not None and alpha.shape == (2, 32, 32)
    assert float(alpha.min()) >= 0.0 and float(alpha.max()) == 1.0
    support = _input_gradient_support(model, "act2", 3, 32)
    assert 0 < int(support.sum()) < 32 * 32 // 20  # the unit reads a small corner of the image
    assert float(alpha[:, ~support].abs().max()) == 0.0  # nothing where no gradient can be
    assert bool((alpha[:, support] == 1.0).any(dim=1).all())  # and the top of each map is inside
    assert "99th percentile" in result.techniques["alpha"]
    assert render(parse_spec({**tiny_spec, "steps": 2}), model=model, info=info).alpha is None


def test_transparency_normalizes_each_map_by_its_99th_percentile() -> None:
    from featviz_cli.engine import transparency

    acc = torch.arange(100.0).repeat(2, 1).view(2, 10, 10)
    acc[1] *= 7
    got = transparency(acc)
    assert torch.allclose(got[0], (acc[0] / 98.0).clamp(max=1)) and torch.allclose(got[1], got[0])
    assert torch.equal(transparency(torch.zeros(1, 4, 4)), torch.zeros(1, 4, 4))
