"""``timm/<name>``: real ``timm.create_model`` on timm's tiny test architectures, without downloads.

The pretrained path runs through timm's own loader from a local file
(``pretrained_cfg_overlay={"file": ...}``, passed on in model.kwargs); the Hugging Face hub is
offline with an empty cache, so a download attempt fails as it does without a connection.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
from models_support import assert_ready, model_error, no_downloads, same_state, spec  # noqa: F401 - fixture

from featviz_cli.models._registry import create_model
from featviz_cli.models.imagenet import imagenet_classes

timm = pytest.importorskip("timm", reason="timm is not installed (pip install 'featviz[timm]')")

torch.set_num_threads(2)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, bool, dict[str, Any]]]:
    """The (name, pretrained, kwargs) of every ``timm.create_model`` call; the hub offline and empty."""
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hf"))
    seen: list[tuple[str, bool, dict[str, Any]]] = []
    real = timm.create_model

    def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        seen.append((name, pretrained, kwargs))
        return real(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", create_model)
    return seen


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A state dict of timm's ``test_resnet`` (seeded), standing in for its pretrained weights."""
    torch.manual_seed(3)
    state = timm.create_model("test_resnet", pretrained=False).state_dict()
    path = tmp_path_factory.mktemp("timm") / "test_resnet.pth"
    torch.save(state, path)
    return path, state


def test_timm_model_and_info(calls: list, resnet_file: tuple[Path, dict]) -> None:
    path, state = resnet_file
    overlay = {"pretrained_cfg_overlay": {"file": str(path)}}
    module, info = create_model(spec(name="timm/test_resnet", kwargs=overlay))
    assert calls == [("test_resnet", True, overlay)]
    assert same_state(module, state)
    assert_ready(module)
    cfg = timm.create_model("test_resnet").pretrained_cfg  # timm's own facts, read independently
    assert (info.name, info.input_size) == ("timm/test_resnet", cfg["input_size"][-1]) == ("timm/test_resnet", 160)
    assert info.mean == info.std == (0.5, 0.5, 0.5) == tuple(cfg["mean"]) == tuple(cfg["std"])
    assert info.class_names == imagenet_classes() and info.weights == "pretrained"
    with torch.no_grad():
        assert module(torch.rand(1, 3, 32, 32)).shape == (1, 1000)
    module, info = create_model(spec(name="timm/test_vit", pretrained=False, kwargs={"num_classes": 7}))
    assert calls[-1] == ("test_vit", False, {"num_classes": 7})
    assert info.class_names is None and info.weights == "none"
    with torch.no_grad():
        assert module(torch.rand(1, 3, 160, 160)).shape == (1, 7)


def test_timm_imagenet_preprocessing_from_its_cfg(calls: list) -> None:
    _, info = create_model(spec(name="timm/test_efficientnet", pretrained=False))
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert info.input_size == 160


def test_timm_random_weights_are_seeded(calls: list) -> None:
    a, _ = create_model(spec(name="timm/test_resnet", pretrained=False))
    torch.manual_seed(123)  # the caller's RNG state does not matter
    b, _ = create_model(spec(name="timm/test_resnet", pretrained=False))
    assert same_state(b, a.state_dict())


def test_timm_checkpoint_skips_download(calls: list, resnet_file: tuple[Path, dict]) -> None:
    path, state = resnet_file
    module, info = create_model(spec(name="timm/test_resnet", checkpoint=str(path)))
    assert calls == [("test_resnet", False, {})]
    assert same_state(module, state) and info.weights == str(path)


def test_timm_errors(calls: list) -> None:
    assert "Did you mean resnet50" in model_error(lambda: create_model(spec(name="timm/resnet05")))
    msg = model_error(lambda: create_model(spec(name="timm/hf-hub:someone/their_net")))
    assert calls[-1][0] == "hf-hub:someone/their_net"  # timm resolves hub names itself
    assert "could not be downloaded" in msg and "model.pretrained: false" in msg
    msg = model_error(lambda: create_model(spec(name="timm/test_resnet")))  # pretrained, hub offline
    assert calls[-1] == ("test_resnet", True, {})
    assert "could not be downloaded" in msg and "model.pretrained: false" in msg
    msg = model_error(lambda: create_model(spec(name="timm/test_resnet", pretrained=False, kwargs={"colour": 1})))
    assert msg.startswith("model.name: timm could not create 'test_resnet'") and "colour" in msg


def test_timm_weights_name_is_refused() -> None:
    msg = model_error(lambda: create_model(spec(name="timm/test_resnet", weights="DEFAULT")))
    assert msg.startswith("model.weights:") and "model.pretrained" in msg


def test_timm_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes ``import timm`` fail
    assert "pip install 'featviz[timm]'" in model_error(lambda: create_model(spec(name="timm/resnet50")))
