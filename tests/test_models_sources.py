"""Model sources: torchvision, local checkpoints, TorchScript, Python factories, timm (faked).

Nothing here downloads: an autouse fixture makes any download attempt fail, and the
pretrained-weights path is exercised by standing in for the download itself.
"""
from __future__ import annotations

import random
import sys
import types
import urllib.error
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import torch
import torch.nn as nn
import torchvision

from featviz_cli.config import ModelSpec
from featviz_cli.errors import ModelError
from featviz_cli.models import sources
from featviz_cli.models._registry import ModelInfo, create_model
from featviz_cli.models.imagenet import imagenet_classes

torch.set_num_threads(2)

TINY_MODULE = '''
import torch.nn as nn


class Tiny(nn.Module):
    def __init__(self, width=4, num_classes=3):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def build(width=4, num_classes=3):
    return Tiny(width, num_classes)


def build_with_info():
    m = Tiny()
    m.featviz_info = {"input_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                      "value_range": [0, 255], "class_names": ["a", "b", "c"]}
    return m


def build_bad_info():
    m = Tiny()
    m.featviz_info = {"mean": [0.5, 0.5], "colour": "rgb"}
    return m


def broken():
    raise RuntimeError("boom\\nsecond line")


def not_a_module():
    return 42


NOT_CALLABLE = 3
'''


class Opaque:
    """A class a weights-only load refuses to unpickle."""

    def __init__(self) -> None:
        self.note = "training state"


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Any real download fails loudly; torch hub's cache is an empty temporary directory."""

    def refuse(url: str, *args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Name of a fresh user module in the current directory (tmp_path), like a user's ``mymodels.py``."""
    name = f"fvz_user_{uuid.uuid4().hex[:8]}"
    work = tmp_path / "work"
    work.mkdir()
    (work / f"{name}.py").write_text(TINY_MODULE)
    monkeypatch.chdir(work)
    yield name
    sys.modules.pop(name, None)


def spec(**kw: Any) -> ModelSpec:
    """A ModelSpec with the given fields."""
    return ModelSpec(**kw)


def assert_ready(module: nn.Module) -> None:
    """create_model's contract: eval mode, every parameter frozen."""
    assert not module.training
    assert all(not m.training for m in module.modules())
    assert all(not p.requires_grad for p in module.parameters())


def model_error(fn: Callable[[], Any]) -> str:
    """The one-line message of the ModelError ``fn`` raises."""
    with pytest.raises(ModelError) as exc:
        fn()
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def tiny_state(seed: int = 0, **kw: Any) -> dict[str, torch.Tensor]:
    """State dict of a seeded Tiny-shaped network, built without importing the user module."""
    torch.manual_seed(seed)
    width, num_classes = kw.get("width", 4), kw.get("num_classes", 3)
    net = nn.Module()
    net.conv = nn.Conv2d(3, width, 3, padding=1)
    net.bn = nn.BatchNorm2d(width)
    net.fc = nn.Linear(width, num_classes)
    with torch.no_grad():
        net.bn.running_mean.uniform_()
    return net.state_dict()


def same_state(module: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """True when ``module`` holds exactly the tensors in ``state``."""
    own = module.state_dict()
    return own.keys() == state.keys() and all(torch.equal(own[k], state[k]) for k in state)


# ---------------------------------------------------------------- torchvision


def test_torchvision_random_weights_build_and_run() -> None:
    module, info = create_model(spec(name="torchvision/resnet18", weights="none"))
    assert_ready(module)
    with torch.no_grad():
        assert module(torch.rand(1, 3, 64, 64)).shape == (1, 1000)
    assert info.name == "torchvision/resnet18" and info.source == "torchvision" and info.weights == "none"
    assert (info.input_size, info.mean, info.std) == (224, sources.IMAGENET_MEAN, sources.IMAGENET_STD)
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


@pytest.mark.parametrize("arch", ["googlenet", "inception_v3"])
def test_mean_std_half_equals_torchvision_transform_input(arch: str) -> None:
    """Pretrained googlenet/inception_v3: our 0.5/0.5 normalization == ImageNet norm + transform_input."""
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    info = sources._torchvision_weights_info(arch, weights)
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
    assert (info.mean, info.std, info.input_size) == (sources.IMAGENET_MEAN, sources.IMAGENET_STD, 224)
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


# ---------------------------------------------------------------- local checkpoints


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


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {f"module.{k}": v for k, v in s.items()},
        lambda s: {"state_dict": s, "epoch": 3},
        lambda s: {"model": {f"module.{k}": v for k, v in s.items()}, "optimizer": {}},
        lambda s: {"model_state_dict": s},
    ],
    ids=["raw", "dataparallel", "state_dict", "model+module", "model_state_dict"],
)
def test_checkpoint_layouts(wrap: Callable, tiny: str, tmp_path: Path) -> None:
    state = tiny_state()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(state), path)
    module, info = create_model(spec(python=f"{tiny}:build", checkpoint=str(path)))
    assert same_state(module, state)
    assert_ready(module)
    assert info.weights == str(path)


def test_checkpoint_key_mismatch_lists_keys(tiny: str, tmp_path: Path) -> None:
    state = tiny_state()
    del state["fc.bias"]
    state["head.weight"] = torch.zeros(1)
    path = tmp_path / "ckpt.pt"
    torch.save(state, path)
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", checkpoint=str(path))))
    assert str(path) in msg and "missing keys fc.bias" in msg and "unexpected keys head.weight" in msg
    torch.save({f"x.{k}": v for k, v in tiny_state().items()}, path)
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", checkpoint=str(path))))
    assert "(+4 more)" in msg  # 9 keys, 5 shown


def test_checkpoint_shape_mismatch_suggests_kwargs(tiny: str, tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save(tiny_state(num_classes=3), path)
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", checkpoint=str(path),
                                                kwargs={"num_classes": 5})))
    assert "fc.weight (3, 4) vs model (5, 4)" in msg and "num_classes" in msg


def _write_corrupt(kind: str, tmp_path: Path) -> Path:
    """A damaged or missing weights file of the given kind."""
    good = tmp_path / "good.pt"
    torch.save(tiny_state(), good)
    path = tmp_path / f"{kind}.pt"
    if kind == "random":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_legacy":
        torch.save(tiny_state(), good, _use_new_zipfile_serialization=False)
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["random", "truncated", "truncated_legacy", "empty", "directory", "missing"])
def test_damaged_or_missing_file_names_the_file(kind: str, tiny: str, tmp_path: Path) -> None:
    path = _write_corrupt(kind, tmp_path)
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", checkpoint=str(path))))
    assert str(path) in msg
    expected = {"directory": "is a directory", "missing": "no such file"}.get(kind, "truncated, corrupt")
    assert expected in msg


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    msg = model_error(lambda: sources.load_checkpoint(path, trust=False))
    assert "does not hold a state dict" in msg and "torch.save(model.state_dict()" in msg


def test_pickle_with_custom_class_needs_trust(tiny: str, tmp_path: Path) -> None:
    state = tiny_state()
    path = tmp_path / "full.pt"
    torch.save({"state_dict": state, "extra": Opaque()}, path)
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", checkpoint=str(path))))
    assert str(path) in msg and "Opaque" in msg and "model.trust_checkpoint: true" in msg
    module, _ = create_model(spec(python=f"{tiny}:build", checkpoint=str(path), trust_checkpoint=True))
    assert same_state(module, state)


def test_trusted_pickle_with_missing_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"fvz_gone_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("class Gone:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    gone = __import__(name).Gone
    path = tmp_path / "gone.pt"
    torch.save({"state_dict": tiny_state(), "x": gone()}, path)
    sys.modules.pop(name)
    (tmp_path / f"{name}.py").unlink()
    msg = model_error(lambda: sources.load_checkpoint(path, trust=True))
    assert "cannot be imported" in msg and str(path) in msg


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
    assert isinstance(sources.load_checkpoint(path, trust=False), torch.jit.ScriptModule)


def test_torchscript_featviz_info_extra_file(tiny: str, tmp_path: Path) -> None:
    net, _ = create_model(spec(python=f"{tiny}:build"))
    path = tmp_path / "net.pt"
    _script(net, path, {"featviz_info.json": '{"input_size": 96, "value_range": [0, 255]}'})
    _, info = create_model(spec(name="torchscript", checkpoint=str(path)))
    assert (info.input_size, info.value_range) == (96, (0.0, 255.0))


def test_torchscript_misuse(tiny: str, tmp_path: Path) -> None:
    net, _ = create_model(spec(python=f"{tiny}:build"))
    ts, sd = tmp_path / "net.ts", tmp_path / "net.pt"
    _script(net, ts)
    torch.save(net.state_dict(), sd)
    assert "required" in model_error(lambda: create_model(spec(name="torchscript")))
    assert "not TorchScript" in model_error(lambda: create_model(spec(name="torchscript", checkpoint=str(sd))))
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", checkpoint=str(ts))))
    assert "is a TorchScript file" in msg and "model.name: torchscript" in msg


# ---------------------------------------------------------------- Python factories


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


# ---------------------------------------------------------------- timm (a stand-in module)


class FakeTimmNet(nn.Module):
    """What timm.create_model returns, reduced to what featviz reads."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.fc = nn.Linear(3, num_classes)
        self.num_classes = num_classes
        self.pretrained_cfg = {"input_size": (3, 256, 256), "mean": (0.5, 0.5, 0.5),
                               "std": (0.5, 0.5, 0.5), "num_classes": 1000}


@pytest.fixture
def fake_timm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A ``timm`` module that records create_model calls."""
    timm = types.ModuleType("timm")
    timm.calls = []  # type: ignore[attr-defined]

    def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        timm.calls.append((name, pretrained, kwargs))  # type: ignore[attr-defined]
        if name == "offline_net":
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return FakeTimmNet(**kwargs)

    timm.create_model = create_model  # type: ignore[attr-defined]
    timm.list_models = lambda: ["resnet50", "vit_tiny_patch16_224", "offline_net"]  # type: ignore[attr-defined]
    timm.is_model = lambda n: n.split(".")[0] in timm.list_models()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "timm", timm)
    return timm


def test_timm_model_and_info(fake_timm: types.ModuleType) -> None:
    module, info = create_model(spec(name="timm/vit_tiny_patch16_224"))
    assert fake_timm.calls == [("vit_tiny_patch16_224", True, {})]
    assert_ready(module)
    assert (info.name, info.input_size) == ("timm/vit_tiny_patch16_224", 256)
    assert info.mean == info.std == (0.5, 0.5, 0.5)
    assert info.class_names == imagenet_classes() and info.weights == "pretrained"
    _, info = create_model(spec(name="timm/resnet50", pretrained=False, kwargs={"num_classes": 7}))
    assert fake_timm.calls[-1] == ("resnet50", False, {"num_classes": 7})
    assert info.class_names is None and info.weights == "none"


def test_timm_checkpoint_skips_download(fake_timm: types.ModuleType, tmp_path: Path) -> None:
    torch.manual_seed(3)
    state = FakeTimmNet().state_dict()
    path = tmp_path / "timm.pt"
    torch.save(state, path)
    module, info = create_model(spec(name="timm/resnet50", checkpoint=str(path)))
    assert fake_timm.calls == [("resnet50", False, {})]
    assert same_state(module, state) and info.weights == str(path)


def test_timm_errors(fake_timm: types.ModuleType) -> None:
    assert "Did you mean resnet50" in model_error(lambda: create_model(spec(name="timm/resnet05")))
    create_model(spec(name="timm/hf-hub:someone/their_net"))  # timm resolves hub names itself
    assert fake_timm.calls[-1][0] == "hf-hub:someone/their_net"
    msg = model_error(lambda: create_model(spec(name="timm/offline_net")))
    assert "could not be downloaded" in msg and "model.pretrained: false" in msg


def test_timm_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes ``import timm`` fail
    assert "pip install 'featviz[timm]'" in model_error(lambda: create_model(spec(name="timm/resnet50")))


# ---------------------------------------------------------------- ImageNet class names


def test_imagenet_classes() -> None:
    names = imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and names[281] == "tabby"
    assert names == tuple(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
