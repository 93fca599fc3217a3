"""engine.py: the render loop (truncation, freezing, seeds, penalties, snapshots, errors), each technique in a
whole render, the model left as it was when a render fails mid-loop, and the same bytes in two processes."""
from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import torch.nn as nn
import yaml

from featviz_cli import engine
from featviz_cli.config import ModelSpec, parse_spec
from featviz_cli.engine import Optimized, render
from featviz_cli.errors import LayerError, OptimizationError
from featviz_cli.hooks import forward_to
from featviz_cli.images import load_image
from featviz_cli.models import ModelInfo, load_model
from featviz_cli.models.preprocess import Preprocess
from featviz_cli.objectives import Objective, gram_cosine
from featviz_cli.optimizers import OPTIMIZERS
from featviz_cli.recipe import build_recipe
from featviz_cli.redirect import relu_modules
from featviz_cli.runtime import Execution

from conftest import DATA, featviz_cmd
from core_helpers import CPU, ROOT, subprocess_env

PHOTO = str(DATA / "chelsea.jpg")


def _values_at(model: nn.Module, info: ModelInfo, images: torch.Tensor, layer: str) -> torch.Tensor:
    """``layer``'s activations for ``images`` as they are (resized to the model input, preprocessed)."""
    x = nn.functional.interpolate(images, size=info.input_size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        return forward_to(model, Preprocess(info)(x), [layer])[layer]


# ---------------------------------------------------------------- the loop


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


def test_optimize_returns_what_the_loop_made(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    spec = parse_spec({**tiny_spec, "thresholds": [2], "relu_redirect": 3})
    recipe = build_recipe(spec, info, CPU)
    seen: list[tuple[int, int]] = []
    run = engine.optimize(model, info, recipe, Execution(CPU), progress=lambda d, t, v: seen.append((d, t)),
                          progress_every=2)
    assert isinstance(run, Optimized) and seen == [(2, 4), (4, 4)]
    assert run.labels == ["act2:3"] and len(run.curve) == 4 and sorted(run.snapshots) == [2]
    assert run.techniques == {"optimizer": "adam", "relu_redirect": {"steps": 3, "modules": 3}, "samples_per_step": 1}
    assert {"batchnorm_folded", "fp32_strided_depthwise", "host_allocator", "channels_last"} <= set(run.runtime)
    assert set(run.timings) == {"optimize_s", "step_ms"}


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


# ---------------------------------------------------------------- penalties


def test_total_variation_penalty_smooths(tiny_spec: dict[str, Any]) -> None:
    def tv(x: torch.Tensor) -> float:
        return float((x[..., 1:] - x[..., :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean())

    base = {**tiny_spec, "steps": 20, "param": {"type": "pixel", "size": 16, "sd": 0.5}}
    plain = render(parse_spec(base))
    smooth = render(parse_spec({**base, "regularizers": {"tv": 50.0}}))
    assert tv(smooth.images) < 0.8 * tv(plain.images)


def test_l2_penalty_pulls_the_image_towards_grey(tiny_spec: dict[str, Any]) -> None:
    def to_grey(x: torch.Tensor) -> float:  # independent of lp_norm: the mean squared distance to 0.5
        return float(((x.double() - 0.5) ** 2).mean())

    base = {**tiny_spec, "steps": 20, "param": {"type": "pixel", "size": 16, "sd": 0.5}}
    plain = render(parse_spec(base))
    held = render(parse_spec({**base, "regularizers": {"l2": 20.0}}))
    assert to_grey(held.images) < 0.7 * to_grey(plain.images)
    assert held.description == plain.description == "channel act2:3"  # penalties are not the objective


# ---------------------------------------------------------------- techniques in a whole render


def test_cppn_render_raises_the_objective_smoothly(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    data = {**tiny_spec, "objective": {"type": "channel", "layer": "conv2", "units": [3, 14]}, "steps": 40,
            "param": {"type": "cppn", "size": 32}, "optimizer": {"lr": 0.005}}
    result = render(parse_spec(data), model=model, info=info)
    assert sum(result.curve[-5:]) > sum(result.curve[:5]) + 0.2
    img = result.images
    assert not torch.allclose(img[0], img[1], atol=0.02)  # two networks, two images
    assert result.techniques["param"].startswith("cppn(8 layers x 24)")


def test_maco_render_raises_the_objective(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    spec = parse_spec({**tiny_spec, "objective": {"type": "channel", "layer": "conv2", "unit": 3},
                       "param": {"type": "maco", "size": 32}, "steps": 30,
                       "transforms": [{"type": "crops", "count": 4}, {"type": "noise"}],
                       "optimizer": {"type": "nadam", "lr": 1.0}})
    result = render(spec, model=model, info=info)
    assert sum(result.curve[-5:]) > sum(result.curve[:5]) + 0.1
    assert result.techniques["samples_per_step"] == 4


def test_same_seed_same_maco_render(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    data = {**tiny_spec, "param": {"type": "maco", "size": 16}, "steps": 3,
            "transforms": [{"type": "crops", "count": 3}, {"type": "noise"}]}
    a, b = (render(parse_spec(data), model=model, info=info).images for _ in range(2))
    assert torch.equal(a, b)


def _photo_spec(tiny_spec: dict[str, Any], init_l2: float, steps: int = 20) -> dict[str, Any]:
    return {**tiny_spec, "objective": {"type": "deepdream", "layer": "act2"}, "steps": steps,
            "param": {"size": 32, "init_image": PHOTO}, "regularizers": {"init_l2": init_l2},
            "optimizer": {"lr": 0.1}}


def test_deepdream_on_a_photo_starts_there_and_init_l2_keeps_it_near(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    photo = load_image(PHOTO, 32)
    free = render(parse_spec(_photo_spec(tiny_spec, 0.0)), model=model, info=info)
    held = render(parse_spec(_photo_spec(tiny_spec, 50.0)), model=model, info=info)
    d_free = float((free.images[0] - photo).pow(2).mean())
    d_held = float((held.images[0] - photo).pow(2).mean())
    assert 0 < d_held < 0.5 * d_free
    assert "L2(image - init_image)" not in free.description  # penalties are not the objective
    start = render(parse_spec(_photo_spec(tiny_spec, 0.0, steps=1) | {"optimizer": {"lr": 1e-9}}), model=model, info=info)
    assert (start.images[0] - photo).abs().max() < 2e-3


def _mean_pairwise(sim: torch.Tensor) -> float:
    b = sim.shape[0]
    return float(sim[~torch.eye(b, dtype=torch.bool)].mean())


def _render_sim(tiny_spec: dict[str, Any], model, info, weight: float) -> tuple[float, list[float]]:
    terms = [{"type": "channel", "layer": "act2", "unit": 3}]
    if weight:
        terms.append({"type": "diversity", "layer": "act2", "weight": weight})
    spec = parse_spec({**tiny_spec, "objective": terms, "param": {"size": 32, "batch": 4}, "steps": 40})
    result = render(spec, model=model, info=info)
    return _mean_pairwise(gram_cosine(_values_at(model, info, result.images, "act2"))), result.values


def test_diversity_lowers_the_mean_pairwise_gram_similarity(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    plain, _ = _render_sim(tiny_spec, model, info, 0.0)
    diverse, _ = _render_sim(tiny_spec, model, info, 4.0)
    assert plain > 0.95  # without the term the four images converge to the same style
    assert diverse < plain - 0.1


def test_images_of_a_diverse_batch_differ(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    tiny_spec.update(objective=[{"type": "channel", "layer": "act2", "unit": 3},
                                {"type": "diversity", "layer": "act2", "weight": 4.0}],
                     param={"size": 32, "batch": 3}, steps=20)
    images = render(parse_spec(tiny_spec), model=model, info=info).images
    for i in range(3):
        for j in range(i + 1, 3):
            assert (images[i] - images[j]).abs().mean() > 0.02


def test_k_diverse_images_per_unit_in_one_batch(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    tiny_spec.update(objective=[{"type": "channel", "layer": "act2", "units": [1, 1, 5, 5]},
                                {"type": "diversity", "layer": "act2", "group": 2}], steps=2)
    result = render(parse_spec(tiny_spec), model=model, info=info)
    assert result.labels == ["act2:1", "act2:1", "act2:5", "act2:5"]
    assert "diversity act2, groups of 2" in result.description


def test_a_prebuilt_objective_replaces_a_sweep_specs_terms(tiny_spec: dict[str, Any], tiny_model) -> None:
    # the sweep's own spec drives a caricature or an atlas cell: its layer list and ranges are not rendered
    from featviz_cli.errors import SpecError
    from featviz_cli.objectives.units import channel

    model, info = tiny_model
    tiny_spec.update(objective={"type": "channel", "layer": ["act2", "act3"], "units": "0:4"}, steps=2,
                     param={"size": 16, "batch": 2})
    spec = parse_spec(tiny_spec)
    with pytest.raises(SpecError, match=r"^objective\.layer: layer lists, 'all' and ranges are for sweeps"):
        render(spec, model=model, info=info)
    result = render(spec, model=model, info=info, objective=channel("act2", [1, 5]))
    assert result.images.shape[0] == 2 and result.labels == ["act2:1", "act2:5"]


def _interp_spec(tiny_spec: dict[str, Any], frames: int = 5, steps: int = 3, **interp: Any) -> dict[str, Any]:
    return {**tiny_spec, "objective": [{"type": "channel", "layer": "conv2", "unit": 3},
                                       {"type": "channel", "layer": "conv2", "unit": 14}],
            "interpolate": {"frames": frames, **interp}, "steps": steps}


@pytest.mark.parametrize("shared", [True, False])
def test_frames_change_monotonically_from_a_to_b(tiny_spec: dict[str, Any], tiny_model, shared: bool) -> None:
    model, info = tiny_model
    spec = parse_spec({**_interp_spec(tiny_spec, frames=6, steps=60, shared=shared), "param": {"size": 32}})
    result = render(spec, model=model, info=info)
    act = _values_at(model, info, result.images, "conv2")
    a, b = act[:, 3].mean((1, 2)), act[:, 14].mean((1, 2))
    lead = (b - a).tolist()
    assert all(x < y for x, y in zip(lead, lead[1:])), lead  # B gains on A frame by frame
    assert lead[-1] - lead[0] > 0.3
    if not shared:  # the shared parts pull every frame towards what the frames have in common
        assert a[0] > b[0] and b[-1] > a[-1]
    assert result.techniques["interpolation_weights_b"] == pytest.approx([f / 5 for f in range(6)])


def test_shared_parts_make_neighbours_closer(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model

    def neighbour_distance(shared: bool) -> float:
        spec = parse_spec({**_interp_spec(tiny_spec, frames=5, steps=30, shared=shared), "param": {"size": 32}})
        images = render(spec, model=model, info=info).images
        return float((images[1:] - images[:-1]).abs().mean())

    assert neighbour_distance(True) < neighbour_distance(False)


def test_same_seed_same_frames(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    spec = parse_spec(_interp_spec(tiny_spec, frames=3))
    a, b = (render(spec, model=model, info=info).images for _ in range(2))
    assert torch.equal(a, b)


def test_unshared_interpolation_works_with_any_param(tiny_spec: dict[str, Any]) -> None:
    data = {**_interp_spec(tiny_spec, frames=3, shared=False), "param": {"size": 16, "type": "cppn"}}
    assert render(parse_spec(data)).images.shape == (3, 3, 16, 16)


def test_engine_redirects_only_the_first_steps(tiny_spec: dict[str, Any], tiny_model, monkeypatch) -> None:
    model, info = tiny_model
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


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_every_optimizer_renders_and_is_recorded(tiny_spec: dict[str, Any], tiny_model, kind: str) -> None:
    model, info = tiny_model
    lr = {"adam": 0.05, "sgd": 5.0, "sign": 0.01, "nadam": 0.05}[kind]
    result = render(parse_spec({**tiny_spec, "optimizer": {"type": kind, "lr": lr}, "steps": 8}), model=model, info=info)
    assert result.techniques["optimizer"] == kind
    assert result.curve[-1] > result.curve[0]


def test_sign_descent_on_pixels_makes_more_high_frequencies_than_adam_on_fft(tiny_spec: dict[str, Any],
                                                                            tiny_model) -> None:
    model, info = tiny_model

    def high_frequency_share(param: dict, optimizer: dict) -> float:
        data = {**tiny_spec, "param": {"size": 32, **param}, "optimizer": optimizer, "steps": 30,
                "objective": {"type": "channel", "layer": "conv2", "unit": 3}}
        img = render(parse_spec(data), model=model, info=info).images
        power = torch.fft.rfft2(img - img.mean((2, 3), keepdim=True)).abs() ** 2
        f = torch.sqrt(torch.fft.fftfreq(32)[:, None] ** 2 + torch.fft.rfftfreq(32)[None, :] ** 2)
        return float(power[..., f > 0.25].sum() / power.sum())

    sign_pixel = high_frequency_share({"type": "pixel", "decorrelate": False}, {"type": "sign", "lr": 0.01})
    adam_fft = high_frequency_share({"type": "fft"}, {"type": "adam", "lr": 0.05})
    assert sign_pixel > 2 * adam_fft


# ---------------------------------------------------------------- a render that fails mid-loop


class _Tripwire(nn.Module):
    """Passes its input on; raises on the ``at``-th forward that builds a graph (a step, not a probe)."""

    def __init__(self, record: Callable[[], None]) -> None:
        super().__init__()
        self.at: int | None = None
        self.calls = 0
        self.record = record

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.at is not None and torch.is_grad_enabled() and x.requires_grad:
            self.calls += 1
            if self.calls == self.at:
                self.record()
                raise RuntimeError("tripped mid-forward")
        return x


class _BNNet(nn.Module):
    """conv-BN-ReLU6, a strided depthwise conv-BN-ReLU, a tripwire, a 1x1 head: every rewrite a render makes applies."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6()
        self.dw, self.dw_bn = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False), nn.BatchNorm2d(8)
        self.dw_act, self.trip, self.head = nn.ReLU(), _Tripwire(self.record), nn.Conv2d(8, 4, 1)
        self.failed_with: dict[str, int] | None = None
        g = torch.Generator().manual_seed(0)
        for bn in (self.bn, self.dw_bn):  # non-trivial statistics, so a fold left in place would show
            bn.running_mean.copy_(torch.randn(8, generator=g))
            bn.running_var.copy_(torch.rand(8, generator=g) + 0.5)
            bn.weight.data.copy_(torch.rand(8, generator=g) + 0.5)
            bn.bias.data.copy_(torch.randn(8, generator=g))
        self.eval()

    def record(self) -> None:
        """Note the rewrites in place now (called where the render fails)."""
        self.failed_with = _rewrites(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trip(self.dw_act(self.dw_bn(self.dw(self.act(self.bn(self.conv(x))))))))


def _rewrites(model: nn.Module) -> dict[str, int]:
    """What a render may have changed on ``model``: hooks, patched methods, BatchNorms in place."""
    return {
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                     + len(m._backward_pre_hooks) for m in model.modules()),
        "patched_forwards": sum("forward" in m.__dict__ for m in model.modules()),
        "patched_convs": sum("_conv_forward" in m.__dict__ for m in model.modules()),
        "batchnorms": sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()),
    }


def _fail_in_forward(model: _BNNet, monkeypatch: pytest.MonkeyPatch) -> type[BaseException]:
    model.trip.at = 3
    return RuntimeError


def _objective_turns_nan(model: _BNNet, monkeypatch: pytest.MonkeyPatch) -> type[BaseException]:
    real = engine.optimize

    def optimize(m, info, recipe, execution, **kw):  # noqa: ANN001, ANN003 - a pass-through
        inner, calls = recipe.objective, [0]

        def fn(acts: dict[str, torch.Tensor]) -> torch.Tensor:
            values = inner(acts)
            if torch.is_grad_enabled():
                calls[0] += 1
                if calls[0] == 3:
                    model.record()
                    return values * float("nan")
            return values

        recipe.objective = Objective(fn, layers=inner.layers, description=inner.description)
        return real(m, info, recipe, execution, **kw)

    monkeypatch.setattr(engine, "optimize", optimize)
    return OptimizationError


def _interrupted_step(model: _BNNet, monkeypatch: pytest.MonkeyPatch) -> type[BaseException]:
    real = engine.make_optimizer

    def make_optimizer(kind: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        opt, calls = real(kind, params, lr), [0]
        step = opt.step

        def interrupted(*a: Any, **kw: Any) -> Any:
            calls[0] += 1
            if calls[0] == 3:
                model.record()
                raise KeyboardInterrupt
            return step(*a, **kw)

        opt.step = interrupted  # type: ignore[method-assign]
        return opt

    monkeypatch.setattr(engine, "make_optimizer", make_optimizer)
    return KeyboardInterrupt


@pytest.mark.parametrize(
    ("fail", "active"),
    [
        # mid-forward: the capture hook, both redirected ReLUs, the fp32 depthwise conv, both folds
        (_fail_in_forward, {"hooks": 1, "patched_forwards": 2, "patched_convs": 1, "batchnorms": 0}),
        (_objective_turns_nan, {"hooks": 0, "patched_forwards": 0, "patched_convs": 1, "batchnorms": 0}),
        (_interrupted_step, {"hooks": 0, "patched_forwards": 0, "patched_convs": 1, "batchnorms": 0}),
    ],
    ids=["raises-in-forward", "objective-nan", "interrupted"],
)
def test_a_render_that_fails_mid_loop_leaves_the_model_as_it_was(fail, active: dict[str, int],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    model = _BNNet()
    reference = copy.deepcopy(model)
    modules, parameters = dict(model.named_modules()), dict(model.named_parameters())
    assert _rewrites(model) == {"hooks": 0, "patched_forwards": 0, "patched_convs": 0, "batchnorms": 2}
    error = fail(model, monkeypatch)
    spec = parse_spec({"objective": {"type": "channel", "layer": "head", "unit": 0}, "param": {"size": 16},
                       "steps": 6, "device": "cpu", "precision": "bf16", "relu_redirect": 6})
    with pytest.raises(error):
        render(spec, model=model, info=ModelInfo(name="bn_net", input_size=16), progress_every=1)
    assert model.failed_with == active  # it failed with these rewrites in place
    assert _rewrites(model) == {"hooks": 0, "patched_forwards": 0, "patched_convs": 0, "batchnorms": 2}
    after = dict(model.named_modules())
    assert after.keys() == modules.keys() and all(after[n] is m for n, m in modules.items())
    ref_params = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        assert p is parameters[name] and torch.equal(p, ref_params[name]), name
    assert all(torch.equal(b, dict(reference.named_buffers())[n]) for n, b in model.named_buffers())
    # The render ran in channels_last; every weight is back in the layout it had, as in the copy.
    assert all(p.stride() == r.stride() for p, r in zip(model.parameters(), reference.parameters()))
    model.trip.at = None
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


# ---------------------------------------------------------------- the same bytes in two processes (Lite0)

LITE0_LAYER, LITE0_BLOCK = "_blocks.5", 5


@pytest.fixture(scope="module")
def lite0_twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same EfficientNet-Lite0 render (32 px, 4 steps, default precision) by two ``featviz render`` processes."""
    tmp = tmp_path_factory.mktemp("lite0")
    spec = tmp / "lite0.yaml"
    spec.write_text(yaml.safe_dump({
        "model": {"name": "efficientnet_lite0", "weights": "none", "input_size": 32},
        "objective": {"type": "channel", "layer": LITE0_LAYER, "unit": 74},
        "param": {"size": 32}, "steps": 4, "device": "cpu"}))
    outs = [tmp / "a", tmp / "b"]
    procs = [subprocess.Popen([*featviz_cmd(), "render", str(spec), "--out", str(out), "--quiet"], cwd=ROOT,
                              env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for out in outs]  # both at once: two cores, half the wait
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    return outs[0], outs[1]


def _meta(out: Path) -> dict[str, Any]:
    return json.loads((out / "meta.json").read_text())


def test_lite0_renders_the_same_bytes_in_two_processes(lite0_twice: tuple[Path, Path]) -> None:
    a, b = lite0_twice
    meta_a, meta_b = _meta(a), _meta(b)
    assert set(meta_a["files"]) == set(meta_b["files"]) and any(n != "grid.png" for n in meta_a["files"])
    for name in meta_a["files"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert [i["objective"] for i in meta_a["images"]] == [i["objective"] for i in meta_b["images"]]
    assert meta_a["loss_curve"] == meta_b["loss_curve"] and len(meta_a["loss_curve"]) == 4
    assert meta_a["precision"] == meta_b["precision"]


def test_lite0_render_folded_batchnorm(lite0_twice: tuple[Path, Path]) -> None:
    model, _ = load_model(ModelSpec(name="efficientnet_lite0", weights="none"))
    # every BatchNorm up to the objective's block: the stem's and those of blocks 0..5
    upto = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)
            and (n == "_bn0" or (n.startswith("_blocks.") and int(n.split(".")[1]) <= LITE0_BLOCK))]
    assert len(upto) == 1 + 2 + 3 * LITE0_BLOCK  # block 0 has no expansion conv
    for out in lite0_twice:
        assert _meta(out)["runtime"]["batchnorm_folded"] == len(upto)


def test_lite0_render_ran_strided_depthwise_in_fp32_under_bf16(lite0_twice: tuple[Path, Path]) -> None:
    meta = _meta(lite0_twice[0])
    if meta["precision"] != "bfloat16":
        pytest.skip(f"precision auto is {meta['precision']} on this CPU (no native bf16): no fp32 depthwise rewrite")
    for out in lite0_twice:
        # the depthwise convolutions of blocks 1, 3, 5 and 11 downsample
        assert _meta(out)["runtime"]["fp32_strided_depthwise"] == 4
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


# ---------------------------------------------------------------- notebooks


def test_a_result_shows_itself_as_its_labelled_grid_enlarged_when_small(tiny_spec: dict[str, Any], tiny_model) -> None:
    import io

    import numpy as np
    from PIL import Image

    tiny_spec["objective"] = {"type": "channel", "layer": "act2", "units": [1, 2, 3]}
    result = render(parse_spec(tiny_spec), model=tiny_model[0], info=tiny_model[1])
    with Image.open(io.BytesIO(result._repr_png_())) as im:
        assert im.format == "PNG"
        shown = np.asarray(im.convert("RGB"))
    pixels = np.rint(result.images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    big = pixels.repeat(8, axis=1).repeat(8, axis=2)  # 16 px images shown at 128 px, each pixel an 8x8 block
    assert (shown[2:130, 2:130] == big[0]).all() and (shown[2:130, 132:260] == big[1]).all()
    assert shown.shape[1] == 2 * 128 + 3 * 2 and shown.shape[0] > 2 * 128  # two columns, two rows with labels
    assert (shown[130:140, 2:130] != 255).any()  # a label strip under the first cell


def test_a_notebook_renders_and_displays_a_result(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    import base64
    import io

    from PIL import Image

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import featviz_cli"),
        nbformat.v4.new_code_cell(
            'result = featviz_cli.render({"model": {"name": "test_tiny"}, "objective": {"type": "channel", '
            '"layer": "act2", "units": [0, 1]}, "param": {"size": 16}, "steps": 2, "device": "cpu"})'),
        nbformat.v4.new_code_cell("result"),
    ]
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    client.execute(env=subprocess_env())
    (out,) = nb.cells[2].outputs
    assert out["output_type"] == "execute_result" and "image/png" in out["data"]
    with Image.open(io.BytesIO(base64.b64decode(out["data"]["image/png"]))) as im:
        assert im.format == "PNG" and im.size[0] == 2 * 128 + 3 * 2  # the labelled grid of two 16 px images
