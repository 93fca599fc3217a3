"""``torchvision/<arch>``: random, pretrained (through torch.hub, the transfer stood in for) and local weights.

Nothing here downloads: an autouse fixture makes any download attempt fail, and the
pretrained-weights path is exercised by standing in for the download itself.
"""
from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from models_support import assert_ready, model_error, no_downloads, same_state, spec  # noqa: F401 - fixture

from featviz_cli.models import torchvision as tv
from featviz_cli.models._registry import create_model
from featviz_cli.models.imagenet import imagenet_classes
from featviz_cli.models.info import IMAGENET_MEAN, IMAGENET_STD

torch.set_num_threads(2)


def test_torchvision_random_weights_build_and_run() -> None:
    module, info = create_model(spec(name="torchvision/resnet18", weights="none"))
    assert_ready(module)
    with torch.no_grad():
        assert module(torch.rand(1, 3, 64, 64)).shape == (1, 1000)
    assert info.name == "torchvision/resnet18" and info.source == "torchvision" and info.weights == "none"
    assert (info.input_size, info.mean, info.std) == (224, IMAGENET_MEAN, IMAGENET_STD)
    assert info.class_names == imagenet_classes()


def test_torchvision_random_class_names_follow_num_classes() -> None:
    _, info = create_model(spec(name="torchvision/squeezenet1_1", weights="none", kwargs={"num_classes": 10}))
    assert info.class_names is None


def test_googlenet_and_inception_are_built_without_input_transform() -> None:
    g, info = create_model(spec(name="torchvision/googlenet", weights="none"))
    assert (g.transform_input, g.aux_logits, info.input_size) == (False, False, 224)
    i, info = create_model(spec(name="torchvision/inception_v3", weights="None"))
    assert (i.transform_input, i.aux_logits, info.input_size) == (False, False, 299)
    msg = model_error(lambda: create_model(spec(name="torchvision/googlenet", weights="none",
                                                kwargs={"transform_input": True})))
    assert "transform_input" in msg and "featviz normalizes" in msg


def test_native_sizes_match_the_weights_presets() -> None:
    """The sizes used without weights are the crop sizes of the archs' own default weights."""
    for arch in ("inception_v3", "quantized_inception_v3", "resnet18", "googlenet"):
        preset = torchvision.models.get_model_weights(arch).DEFAULT.transforms()
        assert tv._NATIVE_SIZE.get(arch, 224) == preset.crop_size[0], arch


@pytest.mark.parametrize("arch", ["googlenet", "inception_v3"])
def test_mean_std_half_equals_torchvision_transform_input(arch: str) -> None:
    """Pretrained googlenet/inception_v3: our 0.5/0.5 normalization == ImageNet norm + transform_input."""
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    info = tv._torchvision_weights_info(arch, weights)
    assert info.mean == info.std == (0.5, 0.5, 0.5)
    ref = torchvision.models.get_model(arch, transform_input=True, aux_logits=False, init_weights=False)
    x = torch.rand(2, 3, 8, 8)
    preset = weights.transforms()
    imagenet = (x - torch.tensor(preset.mean).view(3, 1, 1)) / torch.tensor(preset.std).view(3, 1, 1)
    half = (x - torch.tensor(info.mean).view(3, 1, 1)) / torch.tensor(info.std).view(3, 1, 1)
    # What torchvision's forward() does first when transform_input=True.
    torch.testing.assert_close(ref._transform_input(imagenet), half)


def test_unknown_arch_lists_close_matches() -> None:
    msg = model_error(lambda: create_model(spec(name="torchvision/resnet19", weights="none")))
    assert "'resnet19'" in msg and "resnet18" in msg


def test_unknown_weights_name_lists_valid_names() -> None:
    msg = model_error(lambda: create_model(spec(name="torchvision/resnet18", weights="IMAGENET1K_V2")))
    assert "IMAGENET1K_V1" in msg and "DEFAULT" in msg and "none" in msg


@pytest.fixture
def resnet18_state() -> dict[str, torch.Tensor]:
    """Weights that stand in for the ImageNet download."""
    torch.manual_seed(1)
    return torchvision.models.resnet18().state_dict()


@pytest.mark.parametrize("weights", [None, "DEFAULT", "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1"])
def test_pretrained_weights_go_through_torch_hub(
    weights: str | None, resnet18_state: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The real torchvision/torch.hub path runs; only the network transfer is replaced."""
    urls = []

    def fake_download(url: str, dst: str, *args: Any, **kwargs: Any) -> None:
        urls.append(url)
        torch.save(resnet18_state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    module, info = create_model(spec(name="torchvision/resnet18", weights=weights))
    assert urls == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url]
    assert same_state(module, resnet18_state)
    assert_ready(module)
    assert info.weights == "IMAGENET1K_V1"
    assert (info.mean, info.std, info.input_size) == (IMAGENET_MEAN, IMAGENET_STD, 224)
    assert info.class_names == imagenet_classes()
    # Second build: the file is in the hub cache now, no transfer.
    create_model(spec(name="torchvision/resnet18", weights=weights))
    assert len(urls) == 1


def test_pretrained_weights_load_strictly(resnet18_state: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    del resnet18_state["fc.bias"]
    monkeypatch.setattr(
        torchvision.models.ResNet18_Weights, "get_state_dict", lambda self, *a, **k: resnet18_state
    )
    msg = model_error(lambda: create_model(spec(name="torchvision/resnet18", weights="DEFAULT")))
    assert "fc.bias" in msg


def test_download_failure_suggests_offline_options(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, *args: Any, **kwargs: Any) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    msg = model_error(lambda: create_model(spec(name="torchvision/resnet18")))
    assert "could not be downloaded" in msg and "weights: none" in msg and "checkpoint:" in msg


def test_bad_kwargs_name_model_kwargs() -> None:
    msg = model_error(lambda: create_model(spec(name="torchvision/resnet18", weights="none", kwargs={"colour": 1})))
    assert msg.startswith("model.kwargs")


def test_torchvision_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(2)
    state = torchvision.models.squeezenet1_1().state_dict()
    path = tmp_path / "squeeze.pt"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    module, info = create_model(spec(name="torchvision/squeezenet1_1", checkpoint=str(path)))
    assert same_state(module, state)
    assert_ready(module)
    assert info.weights == str(path) and info.class_names == imagenet_classes()
    msg = model_error(lambda: create_model(spec(name="torchvision/squeezenet1_1", checkpoint=str(path),
                                                weights="DEFAULT")))
    assert "either model.weights or model.checkpoint" in msg
