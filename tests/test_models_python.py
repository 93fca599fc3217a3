"""``model.python: "package.module:factory"``: the user's factory, its kwargs, featviz_info, errors."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from models_support import assert_ready, model_error, no_downloads, spec, tiny  # noqa: F401 - fixtures

from featviz_cli.models._registry import create_model
from featviz_cli.models.info import ModelInfo

torch.set_num_threads(2)


def test_python_factory_with_kwargs(tiny: str) -> None:
    before = list(sys.path)
    module, info = create_model(spec(python=f"{tiny}:build", kwargs={"width": 8}))
    assert sys.path == before
    assert module.conv.out_channels == 8
    assert_ready(module)
    assert info == ModelInfo(name=f"{tiny}:build", source="python")


def test_python_factory_featviz_info(tiny: str) -> None:
    _, info = create_model(spec(python=f"{tiny}:build_with_info"))
    assert (info.input_size, info.mean, info.std) == (32, (0.5,) * 3, (0.25,) * 3)
    assert (info.value_range, info.class_names) == ((0.0, 255.0), ("a", "b", "c"))
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build_bad_info")))
    assert "featviz_info" in msg and "colour" in msg


def test_python_takes_no_weights_name(tiny: str) -> None:
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", weights="DEFAULT")))
    assert msg == "model.weights: applies to torchvision models only; use model.checkpoint with model.python."
    create_model(spec(python=f"{tiny}:build", weights="none"))  # random weights are what a factory gives


@pytest.mark.parametrize("target", ["nocolon", "mod:", ":build", "my mod:build", "mod:build:x", "mod:1x"])
def test_python_target_format(target: str) -> None:
    msg = model_error(lambda: create_model(spec(python=target)))
    assert msg.startswith("model.python:") and "package.module:factory" in msg


@pytest.mark.parametrize(
    "attr, expected",
    [
        ("buld", "has no attribute 'buld'. Did you mean build"),
        ("NOT_CALLABLE", "is a int, not a function"),
        ("broken", "raised RuntimeError: boom second line"),
        ("not_a_module", "returned int, not a torch.nn.Module"),
    ],
)
def test_python_factory_errors(attr: str, expected: str, tiny: str) -> None:
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:{attr}")))
    assert msg.startswith("model.python:") and expected in msg


def test_python_import_errors(tiny: str) -> None:
    assert "cannot find module 'no_such_module_fvz'" in model_error(
        lambda: create_model(spec(python="no_such_module_fvz:build"))
    )
    Path("needs_dep_fvz.py").write_text("import no_such_dependency_fvz\n")
    msg = model_error(lambda: create_model(spec(python="needs_dep_fvz:build")))
    assert "no_such_dependency_fvz" in msg and "install" in msg
    sys.modules.pop("needs_dep_fvz", None)
