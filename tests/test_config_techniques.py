"""The spec of the techniques: new fields in the schema, batch size rules, one example config each."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from featviz_cli.config import batch_size, json_schema, load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
TECHNIQUE_CONFIGS = {
    "diversity": lambda s: any(t.type == "diversity" for t in s.objective),
    "interpolation": lambda s: s.interpolate is not None and any(t.type == "alignment" for t in s.objective),
    "generator": lambda s: s.param.type == "generator",
    "cppn": lambda s: s.param.type == "cppn",
    "maco": lambda s: s.param.type == "maco" and any(t.type == "crops" for t in s.transforms),
    "photo": lambda s: s.param.init_image is not None,
    "accentuation": lambda s: s.regularizers.init_l2 > 0,
    "steepest": lambda s: s.optimizer.type == "sign",
    "direction": lambda s: s.objective[0].random_seed is not None,
}


def test_each_technique_has_an_example_config() -> None:
    for name, uses in TECHNIQUE_CONFIGS.items():
        assert uses(load_spec(ROOT / "configs" / f"{name}.yaml")), name


def test_schema_lists_the_new_choices_and_fields() -> None:
    props = json_schema()["properties"]
    param = props["param"]["properties"]
    assert param["type"]["enum"] == ["fft", "pixel", "cppn", "generator", "maco"]
    for name in ("init_image", "spectrum", "cppn_layers", "cppn_width", "generator"):
        assert param[name]["description"], name
    generator = param["generator"]["anyOf"][0]
    assert generator["required"] == ["latent_size"] and "output_range" in generator["properties"]
    assert props["optimizer"]["properties"]["type"]["enum"] == ["adam", "sgd", "sign", "nadam"]
    assert "L-infinity" in props["optimizer"]["properties"]["type"]["description"]
    terms = props["objective"]["oneOf"][0]["properties"]
    assert {"diversity", "alignment"} <= set(terms["type"]["enum"]) and terms["group"]["anyOf"][0]["minimum"] == 2
    transform = props["transforms"]["oneOf"][1]["items"]["properties"]
    assert {"crops", "noise"} <= set(transform["type"]["enum"]) and {"count", "box", "std"} <= set(transform)
    assert props["relu_redirect"]["minimum"] == 0 and "16" in props["relu_redirect"]["description"]
    assert props["regularizers"]["properties"]["init_l2"]["minimum"] == 0
    interpolate = props["interpolate"]["anyOf"][0]["properties"]
    assert interpolate["frames"]["minimum"] == 2 and "duration_ms" in interpolate


def test_defaults(tiny_spec: dict[str, Any]) -> None:
    spec = parse_spec(tiny_spec)
    assert spec.relu_redirect == 16 and spec.interpolate is None and spec.regularizers.init_l2 == 0
    assert spec.param.init_image is None and spec.param.generator is None


def test_batch_size(tiny_spec: dict[str, Any]) -> None:
    assert batch_size(parse_spec(tiny_spec)) == 1
    assert batch_size(parse_spec({**tiny_spec, "param": {"batch": 4}})) == 4  # K images of one unit
    two = [{"type": "channel", "layer": "act2", "unit": 1}, {"type": "channel", "layer": "act2", "unit": 2}]
    assert batch_size(parse_spec({**tiny_spec, "objective": two, "interpolate": {"frames": 6}})) == 6
