"""api.py: render without files, render_to_dir (images, animations, meta.json, dataset examples), layers, meta."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from PIL import Image

import featviz_cli
from featviz_cli import api
from featviz_cli.config import ModelSpec, parse_spec
from featviz_cli.outputs import gif_bytes, webp_supported


META_KEYS = {"featviz", "name", "model", "layers", "objective", "images", "seed", "device", "precision", "steps",
             "loss_curve", "timings", "techniques", "runtime", "versions", "spec"}


def _interp_spec(tiny_spec: dict[str, Any], frames: int) -> dict[str, Any]:
    return {**tiny_spec, "objective": [{"type": "channel", "layer": "conv2", "unit": 3},
                                       {"type": "channel", "layer": "conv2", "unit": 14}],
            "interpolate": {"frames": frames}, "steps": 3}


def test_api_render_returns_images_and_writes_nothing(tiny_spec: dict[str, Any], tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = featviz_cli.render(tiny_spec)
    assert result.images.shape == (1, 3, 16, 16)
    assert 0 <= result.images.min() and result.images.max() <= 1
    assert result.labels == ["act2:3"] and len(result.values) == 1
    assert len(result.curve) == 4 and result.description == "channel act2:3"
    assert list(tmp_path.iterdir()) == []


def test_a_spec_is_accepted_as_spec_dict_or_yaml_path(tiny_spec: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_spec))
    spec = parse_spec(tiny_spec)
    assert api.as_spec(spec) is spec
    assert api.as_spec(tiny_spec) == spec == api.as_spec(path) == api.as_spec(str(path))


def test_render_to_dir_writes_images_and_meta_with_its_keys(tiny_spec: dict[str, Any], tmp_path: Path) -> None:
    result, files = api.render_to_dir(tiny_spec, tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert set(meta) == META_KEYS | {"files", "output_dir"} and set(meta["files"]) == set(files)
    assert meta == {**api.result_meta(result), "files": meta["files"], "output_dir": str(tmp_path / "out"),
                    "versions": meta["versions"]}
    assert meta["images"] == [{"index": 0, "label": "act2:3", "objective": result.values[0]}]
    assert meta["runtime"]["host_allocator"] and meta["techniques"]["optimizer"] == "adam"
    assert result.examples is None  # no dataset section: no examples pass


def test_writes_strip_gif_webp_and_meta_last(tiny_spec: dict[str, Any], tmp_path) -> None:
    spec = parse_spec(_interp_spec(tiny_spec, frames=4))
    result, files = api.render_to_dir(spec, tmp_path)
    names = set(files)
    assert {"strip.png", "interpolation.gif", "grid.png"} <= names
    assert ("interpolation.webp" in names) == webp_supported()
    assert sum(n.endswith(".png") and n[:3].isdigit() for n in names) == 4
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert set(meta["files"]) == names
    assert meta["objective"].startswith("interpolate(")
    with Image.open(tmp_path / "strip.png") as strip:
        assert strip.size == (4 * 16 + 5 * 2, 16 + 2 * 2)  # one row, 2 px padding
    with Image.open(tmp_path / "interpolation.gif") as gif:
        assert gif.n_frames == 6  # 0 1 2 3 2 1: A to B and back
        assert gif.info["duration"] == 150 and gif.info["loop"] == 0
    # the file is the animation of the rendered frames (encoded again here, from the result)
    assert (tmp_path / "interpolation.gif").read_bytes() == gif_bytes(result.images.permute(0, 2, 3, 1).numpy())


def test_gif_keeps_colours() -> None:
    flat = (torch.ones(2, 8, 8, 3) * torch.tensor([1.0, 0.0, 0.0])).numpy()
    with Image.open(io.BytesIO(gif_bytes(flat, pingpong=False))) as gif:
        assert gif.convert("RGB").getpixel((3, 3)) == (255, 0, 0)


def test_render_to_dir_with_a_dataset_also_runs_the_examples(tiny_spec: dict[str, Any], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import featviz_cli.engine as engine
    import featviz_cli.models as models

    loads: list[str] = []
    real = models.load_model

    def counting(spec: ModelSpec):  # noqa: ANN202 - the registry's own return type
        loads.append(spec.name)
        return real(spec)

    monkeypatch.setattr(models, "load_model", counting)
    monkeypatch.setattr(engine, "load_model", counting)
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        (tmp_path / "images").mkdir(exist_ok=True)
        Image.new("RGB", (40, 48), colour).save(tmp_path / "images" / f"{i}.png")
    data = {**tiny_spec, "dataset": {"images": str(tmp_path / "images"), "k": 1, "workers": 0}}
    result, files = api.render_to_dir(data, tmp_path / "out")
    assert loads == ["test_tiny"]  # one model for the render and the examples
    assert result.examples is not None
    examples, pages = result.examples
    assert (examples.images_seen, examples.unreadable) == (3, 0) and list(pages) == ["act2"]
    assert (tmp_path / "out" / "examples" / "act2" / "index.html").is_file()
    assert (tmp_path / "out" / "meta.json").is_file() and "grid.png" in files


def test_model_layers_lists_shapes_at_the_asked_size() -> None:
    info, n, rows = api.model_layers(ModelSpec(name="test_tiny"), 64)
    assert (info.name, n) == ("test_tiny", 64)
    by_name = {r.name: r for r in rows}
    assert by_name["act2"].shape == (16, 32, 32) and by_name["fc"].shape == (10,)
    assert api.model_layers(ModelSpec(name="test_tiny"))[1] == 32  # default: the model's input size


def test_versions_name_the_libraries_that_shape_results() -> None:
    v = api.versions()
    assert set(v) == {"featviz", "torch", "torchvision", "numpy", "pillow", "python", "platform"}
    assert v["featviz"] == featviz_cli.__version__ and v["torch"] == torch.__version__
