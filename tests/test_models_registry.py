"""The model registry and the package's entry points: names -> builders, create_model, load_model."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from models_support import assert_ready, model_error, spec

import featviz_cli.models as models
import featviz_cli.models.efficientnet_lite as lite
from featviz_cli.config import ModelSpec
from featviz_cli.models import _registry
from featviz_cli.models.info import ModelInfo
from featviz_cli.models.tiny import TinyNet

torch.set_num_threads(2)


def test_registry_imports_only_errors_at_run_time() -> None:
    """The registry imports no source (they import it): only ``errors`` of the package, at run time."""
    tree = ast.parse(Path(_registry.__file__).read_text())
    imported = [
        (node.level, node.module)
        for node in tree.body  # top level only: TYPE_CHECKING imports sit inside an ``if``
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert imported == [(2, "errors")]
    assert not any(isinstance(node, ast.ImportFrom) and node.level > 0
                   for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef) for node in ast.walk(fn))


def test_package_registers_the_builtin_sources() -> None:
    assert models.available_models() == [
        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "test_tiny", "torchscript",
        "timm/<name>", "torchvision/<name>",
    ]
    assert "python" in _registry._SOURCES  # model.python, not listed as a name prefix


def test_unknown_name_suggests_close_matches() -> None:
    msg = model_error(lambda: models.create_model(spec(name="efficientnet_lite3")))
    assert msg.startswith("model.name: unknown model 'efficientnet_lite3'. Did you mean efficientnet_lite")
    assert "Known: efficientnet_lite0, " in msg and "torchvision/<name>" in msg
    assert "python/<name>" not in msg


def test_register_model_and_source(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def exact(s: ModelSpec) -> tuple[nn.Module, ModelInfo]:
        return nn.Linear(2, 2).train(), ModelInfo(name=s.name)

    def prefixed(rest: str, s: ModelSpec) -> tuple[nn.Module, ModelInfo]:
        seen.append(rest)
        return nn.Linear(2, 2), ModelInfo(name=s.name)

    monkeypatch.setattr(_registry, "_MODELS", dict(_registry._MODELS))
    monkeypatch.setattr(_registry, "_SOURCES", dict(_registry._SOURCES))
    assert models.register_model("fvz_exact")(exact) is exact
    assert models.register_source("fvzsrc")(prefixed) is prefixed
    module, info = models.create_model(spec(name="fvz_exact"))
    assert_ready(module)
    assert info.name == "fvz_exact"
    models.create_model(spec(name="fvzsrc/a/b"))
    assert seen == ["a/b"]
    assert "fvz_exact" in models.available_models() and "fvzsrc/<name>" in models.available_models()


def test_random_weights_come_from_seed_zero_and_leave_the_callers_rng() -> None:
    torch.manual_seed(7)
    before = torch.random.get_rng_state()
    module, _ = models.create_model(spec(name="torchvision/resnet18", weights="none"))
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(0)
    import torchvision

    reference = torchvision.models.resnet18()  # built directly from the same seed
    assert all(torch.equal(a, b) for a, b in zip(module.state_dict().values(), reference.state_dict().values()))


def test_test_tiny_is_seeded_by_its_kwargs() -> None:
    module, info = models.create_model(spec(name="test_tiny", kwargs={"seed": 3, "width": 4}))
    torch.manual_seed(3)
    reference = TinyNet(width=4)
    assert all(torch.equal(a, b) for a, b in zip(module.state_dict().values(), reference.state_dict().values()))
    assert info.input_size == 32 and info.class_names == tuple(f"class{i}" for i in range(10))


def test_preprocessing_overrides_are_applied_by_load_model() -> None:
    from featviz_cli.models import load_model

    spec = ModelSpec(name="efficientnet_lite0", weights="none", input_size=300,
                     mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], value_range=[0, 1])
    _, own = lite.efficientnet_lite0(spec)  # the builder reports the model's own facts only
    assert own.input_size == 224 and own.mean == (127.0,) * 3 and own.std == (128.0,) * 3
    assert own.value_range == (0.0, 255.0)
    _, info = load_model(spec)
    assert info.input_size == 300 and info.mean == (0.5,) * 3 and info.std == (0.25,) * 3
    assert info.value_range == (0, 1) and info.extra["native_input_size"] == 224
    assert len(info.class_names) == 1000
