"""What the tests of ``featviz_cli.models`` share: a user module, no downloads, state-dict helpers.

Import the fixtures into a test module to use them (``from models_support import tiny``).
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import torch
import torch.nn as nn

from featviz_cli.config import ModelSpec
from featviz_cli.errors import ModelError

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
