"""Helpers shared by the tests of dictionaries, factors, caricatures, grids and atlases: a folder of
small synthetic photos, their activations on the tiny model, and a dictionary with one planted direction."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from featviz_cli.hooks import forward_to
from featviz_cli.models.preprocess import Preprocess

#: Coloured squares on grey: each photo's activations at act3 point in their own direction.
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 20)}
PLANTED = 2  # the row of the planted direction


def square_photos(folder: Path, size: int = 32) -> Path:
    """``folder`` with one ``<colour>.png`` per ``COLOURS`` entry: a coloured square on grey."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, colour in COLOURS.items():
        a = np.full((size, size, 3), 128, np.uint8)
        a[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = colour
        Image.fromarray(a).save(folder / f"{name}.png")
    return folder


def images_of(paths: list[Path]) -> torch.Tensor:
    """PNG files as a (B, 3, H, W) batch in [0, 1]."""
    return torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1).float() / 255
                        for p in paths])


def acts_of(tiny_model: Any, images: torch.Tensor, layer: str = "act3") -> torch.Tensor:
    """The tiny model's activations at ``layer`` for a batch of [0, 1] images at its input size."""
    model, info = tiny_model
    with torch.no_grad():
        return forward_to(model.eval(), Preprocess(info)(images), [layer])[layer]


def planted_dictionary(tiny_model: Any, folder: Path, path: Path) -> torch.Tensor:
    """Save a 6 x 32 dictionary for act3 whose row ``PLANTED`` is the red photo's direction (its mean
    activation vector minus the photos' mean); the other rows are random and orthogonal to it."""
    vec = acts_of(tiny_model, images_of([folder / f"{n}.png" for n in COLOURS])).mean((2, 3))
    d = vec[0] - vec.mean(0)
    d = d / d.norm()
    rows = torch.randn(5, 32, generator=torch.Generator().manual_seed(1))
    rows = rows - (rows @ d)[:, None] * d[None]
    rows = rows / rows.norm(dim=1, keepdim=True)
    np.save(path, torch.cat([rows[:PLANTED], d[None], rows[PLANTED:]]).numpy())
    return d


def dictionary_spec(path: Path, **changes: Any) -> dict[str, Any]:
    """A dictionary sweep of every row of ``path`` at act3 of the tiny model."""
    spec = {"model": {"name": "test_tiny"},
            "objective": {"type": "direction", "layer": "act3", "vector_file": str(path), "units": "all",
                          "cossim_pow": 1},
            "param": {"size": 32}, "steps": 16, "device": "cpu", "sweep": {"batch": 6, "page_size": 4}}
    spec.update(changes)
    return spec


def browser_or_skip() -> Any:
    """A headless Chromium (tests/chromium.py), or the test skipped with the way to install one."""
    import os

    import pytest

    from chromium import Browser, find_chromium

    exe = find_chromium()
    if exe is None:
        reason = "chromium is not installed here; 'make chromium' installs Debian's (apt-get install chromium)"
        if os.environ.get("FEATVIZ_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    return Browser(exe)


def mouse(b: Any, kind: str, x: float, y: float, **more: Any) -> None:
    """One mouse event (``mouseMoved``, ``mousePressed``, ``mouseReleased``, ``mouseWheel``) at page (x, y)."""
    b.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, **more}, session=True)


def rect(b: Any, element_id: str) -> dict[str, float]:
    """The bounding rectangle of an element of the page."""
    import json

    return json.loads(b.eval(f"JSON.stringify(document.getElementById({element_id!r}).getBoundingClientRect())"))
