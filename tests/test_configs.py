"""Every example in configs/ validates and renders end to end at tiny size and steps."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from featviz_cli.api import render_to_dir
from featviz_cli.config import load_spec

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))
# Tiny: 16 px images seen by the network at 48 px, 3 steps, random weights for downloads.
TINY = ["steps=3", "param.size=16", "model.input_size=48", "device=cpu"]


def test_there_are_examples() -> None:
    names = {p.stem for p in CONFIGS}
    assert {"quickstart", "channel", "neuron", "deepdream", "probability", "direction", "combination",
            "pixel", "regularized", "torchvision"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_renders(path: Path, tmp_path: Path) -> None:
    overrides = list(TINY)
    spec = load_spec(path)
    if spec.model.name.startswith("torchvision/"):
        overrides.append("model.weights=none")  # never download in tests
        overrides[2] = "model.input_size=64"
    if spec.thresholds:
        overrides.append("thresholds=[2]")
    spec = load_spec(path, overrides)
    result, files = render_to_dir(spec, tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["steps"] == 3 and len(meta["loss_curve"]) == 3
    assert len(result.labels) == result.images.shape[0]
    for name in files:
        with Image.open(tmp_path / "out" / name) as im:
            im.load()
    assert "grid.png" in files
