"""featviz_cli/directions/caricature.py: feature inversion of a photo, one layer per batch element."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from featviz_cli.config import parse_spec
from featviz_cli.directions.caricature import (photo_activations, render_caricatures, run_caricatures,
                                               similarity)
from featviz_cli.errors import LayerError, SpecError
from featviz_cli.images import load_image

from conftest import DATA

SPEC = {"model": {"name": "test_tiny"}, "objective": {"type": "channel", "layer": "act3", "unit": 0},
        "param": {"size": 32}, "steps": 48, "device": "cpu", "transforms": "none"}


def test_a_caricature_is_much_closer_to_its_photo_than_noise_or_another_photo(tiny_model) -> None:
    model, info = tiny_model
    layers = ["act2", "act3"]
    c = render_caricatures(parse_spec(SPEC), DATA / "chelsea.jpg", layers, cossim_pow=4, model=model, info=info)
    assert c.result.images.shape == (2, 3, 32, 32) and c.result.labels == layers
    photo = load_image(DATA / "chelsea.jpg", info.input_size)
    baselines = {"another photo": load_image(DATA / "coffee.jpg", info.input_size),
                 "noise": torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))}
    for i, layer in enumerate(layers):
        target = photo_activations(model, info, photo, [layer])[layer]
        mine = photo_activations(model, info, c.result.images[i], [layer])[layer]
        assert similarity(mine, target) == pytest.approx(c.similarity[i], abs=1e-4)
        for name, image in baselines.items():
            theirs = similarity(photo_activations(model, info, image, [layer])[layer], target)
            assert 1 - c.similarity[i] < (1 - theirs) / 3, (layer, name, c.similarity[i], theirs)


def test_each_batch_element_matches_its_own_layer_only(tiny_model) -> None:
    """Element i's objective reads layer i: the gradient of element 0 does not depend on the act3 target."""
    from featviz_cli.directions.caricature import caricature_objective

    targets = {"act2": torch.rand(16, 16, 16), "act3": torch.rand(32, 8, 8)}
    objective = caricature_objective(targets, cossim_pow=1)
    acts = {"act2": torch.rand(2, 16, 16, 16), "act3": torch.rand(2, 32, 8, 8)}
    values = objective(acts)
    dot = (acts["act2"][0].flatten() @ targets["act2"].flatten())
    cos = torch.nn.functional.cosine_similarity(acts["act2"][0].flatten(), targets["act2"].flatten(), dim=0)
    assert values[0].item() == pytest.approx((dot * cos).item(), rel=1e-4)
    changed = {**targets, "act3": torch.rand(32, 8, 8)}
    assert caricature_objective(changed, cossim_pow=1)(acts)[0].item() == pytest.approx(values[0].item())
    with pytest.raises(LayerError, match=r"the target has shape \(16, 16, 16\) but layer 'act2' gives \(32, 8, 8\)"):
        objective.check({"act2": torch.Size([2, 32, 8, 8]), "act3": torch.Size([2, 32, 8, 8])})


def test_caricatures_of_a_sweep_directory_use_its_layers_and_resume(tmp_path: Path) -> None:
    from featviz_cli import sweep as sw

    sweep = {**SPEC, "steps": 2, "param": {"size": 16}, "objective": {"type": "channel", "layer": ["act2", "act3"],
                                                                      "units": "0:2"}}
    sw.run_sweep(parse_spec(sweep), tmp_path / "out")
    path, rendered = run_caricatures(parse_spec({**SPEC, "steps": 4}), DATA / "coffee.jpg", tmp_path / "out")
    doc = json.loads(path.read_text())
    assert rendered and [e["layer"] for e in doc["layers"]] == ["act2", "act3"]
    assert [e["image"] for e in doc["layers"]] == ["caricatures/act2.png", "caricatures/act3.png"]
    index = (tmp_path / "out" / "index.html").read_text()
    assert "Caricatures of coffee.jpg" in index and 'src="caricatures/act3.png"' in index
    mtime = (tmp_path / "out" / "caricatures" / "act2.png").stat().st_mtime_ns
    assert run_caricatures(parse_spec({**SPEC, "steps": 4}), DATA / "coffee.jpg", tmp_path / "out")[1] is False
    assert (tmp_path / "out" / "caricatures" / "act2.png").stat().st_mtime_ns == mtime
    with pytest.raises(SpecError, match=r"^--image: .*nope\.jpg: no such file"):
        run_caricatures(parse_spec(SPEC), tmp_path / "nope.jpg", tmp_path / "out")
    with pytest.raises(LayerError):
        run_caricatures(parse_spec(SPEC), DATA / "coffee.jpg", tmp_path / "other", layers=["act9"])
