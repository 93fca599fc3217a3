"""The JSON Schema: generated from the dataclasses, closed, described, and true to the shipped configs."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from featviz_cli.config.load import load_yaml
from featviz_cli.config.schema import json_schema
from featviz_cli.config.spec import Spec, TransformSpec

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def _objects(node: Any, path: str = "$") -> list[tuple[str, dict]]:
    """Every schema node with ``properties`` (the dataclass objects), with its JSON path."""
    found: list[tuple[str, dict]] = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append((path, node))
        for k, v in node.items():
            found += _objects(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _objects(v, f"{path}[{i}]")
    return found


def test_schema_is_json_and_describes_the_spec() -> None:
    schema = json.loads(json.dumps(json_schema()))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object" and schema["required"] == ["objective"]
    assert set(schema["properties"]) == {f.name for f in dataclasses.fields(Spec)}
    props = schema["properties"]
    assert props["steps"] == {"type": "integer", "minimum": 1, "description": "Optimization steps."}
    assert props["param"]["properties"]["size"]["minimum"] == 8
    assert props["param"]["properties"]["size"]["maximum"] == 4096
    assert props["optimizer"]["properties"]["lr"]["exclusiveMinimum"] == 0
    assert props["param"]["properties"]["type"]["enum"] == ["fft", "pixel", "cppn", "generator", "maco"]
    assert {"enum": ["standard", "none", None, False]} in props["transforms"]["oneOf"]
    objective_forms = props["objective"]["oneOf"]
    assert [f["type"] for f in objective_forms] == ["object", "array"]
    assert objective_forms[1]["minItems"] == 1


def test_schema_closes_every_object_and_describes_every_field() -> None:
    objects = _objects(json_schema())
    assert len(objects) >= 8  # Spec, model, objective (twice), param, transforms, regularizers, optimizer, output
    for path, node in objects:
        assert node["additionalProperties"] is False, path
        assert node.get("description"), path
        for name, prop in node["properties"].items():
            assert prop.get("description"), f"{path}.{name}"


def test_schema_required_keys_match_the_dataclasses() -> None:
    transform = json_schema()["properties"]["transforms"]["oneOf"][1]["items"]
    assert transform["required"] == ["type"]
    assert set(transform["properties"]) == {f.name for f in dataclasses.fields(TransformSpec)}


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


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_match_the_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(json_schema())
    jsonschema.validate(load_yaml(path), json_schema(), cls=jsonschema.Draft202012Validator)


def test_schema_accepts_valid_and_rejects_invalid_specs(tiny_spec: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(tiny_spec, schema)
    tiny_spec["stpes"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(tiny_spec, schema)


def test_featviz_schema_prints_the_recorded_schema() -> None:
    """The bytes 'featviz schema' prints, recorded before the spec became a package (and again with sweep.techniques)."""
    recorded = (ROOT / "tests" / "golden" / "schema.json").read_text(encoding="utf-8")
    assert json.dumps(json_schema(), indent=2) + "\n" == recorded


def test_featviz_schema_lists_the_alpha_maps_the_feature_penalty_and_the_crop_centres() -> None:
    from typer.testing import CliRunner

    from featviz_cli.cli import app

    res = CliRunner().invoke(app, ["schema"])
    assert res.exit_code == 0, res.output
    props = json.loads(res.stdout)["properties"]
    alpha = props["output"]["properties"]["alpha"]
    assert alpha["type"] == "boolean" and "transparency" in alpha["description"]
    features = props["regularizers"]["properties"]["features"]["anyOf"][0]
    assert features["required"] == ["layer"] and features["properties"]["weight"]["minimum"] == 0
    centres = props["transforms"]["oneOf"][1]["items"]["properties"]["centres"]
    assert "uniform" in json.dumps(centres) and "edges" in centres["description"]
