"""``model.name: torchscript``: a ``torch.jit.save`` file used as is, its featviz_info.json, misuse."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn as nn
from models_support import assert_ready, model_error, no_downloads, spec, tiny  # noqa: F401 - fixtures

from featviz_cli.models import checkpoint
from featviz_cli.models._registry import create_model

torch.set_num_threads(2)


def _script(module: nn.Module, path: Path, extra: dict[str, str] | None = None) -> None:
    """Save ``module`` as TorchScript (deprecation warnings of torch.jit silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(module), str(path), _extra_files=extra or {})


def test_torchscript_round_trip(tiny: str, tmp_path: Path) -> None:
    net, _ = create_model(spec(python=f"{tiny}:build"))
    path = tmp_path / "net.ts"
    _script(net, path)
    module, info = create_model(spec(name="torchscript", checkpoint=str(path)))
    assert isinstance(module, torch.jit.ScriptModule)
    assert_ready(module)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(module(x), net(x))
    assert info.extra == {"scripted": True} and info.source == "torchscript" and info.weights == str(path)
    assert isinstance(checkpoint.load_checkpoint(path, trust=False), torch.jit.ScriptModule)


def test_torchscript_featviz_info_extra_file(tiny: str, tmp_path: Path) -> None:
    net, _ = create_model(spec(python=f"{tiny}:build"))
    path = tmp_path / "net.pt"
    _script(net, path, {"featviz_info.json": '{"input_size": 96, "value_range": [0, 255]}'})
    _, info = create_model(spec(name="torchscript", checkpoint=str(path)))
    assert (info.input_size, info.value_range) == (96, (0.0, 255.0))


def test_torchscript_featviz_info_must_be_json(tiny: str, tmp_path: Path) -> None:
    net, _ = create_model(spec(python=f"{tiny}:build"))
    path = tmp_path / "net.pt"
    _script(net, path, {"featviz_info.json": "{input_size: 96"})
    msg = model_error(lambda: create_model(spec(name="torchscript", checkpoint=str(path))))
    assert str(path) in msg and "featviz_info.json is not valid JSON" in msg


def test_torchscript_misuse(tiny: str, tmp_path: Path) -> None:
    net, _ = create_model(spec(python=f"{tiny}:build"))
    ts, sd = tmp_path / "net.ts", tmp_path / "net.pt"
    _script(net, ts)
    torch.save(net.state_dict(), sd)
    assert "required" in model_error(lambda: create_model(spec(name="torchscript")))
    assert "not TorchScript" in model_error(lambda: create_model(spec(name="torchscript", checkpoint=str(sd))))
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", checkpoint=str(ts))))
    assert "is a TorchScript file" in msg and "model.name: torchscript" in msg
