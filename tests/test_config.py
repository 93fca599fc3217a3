"""The spec: YAML loading, validation errors that name the field and the fix, overrides, JSON Schema."""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from featviz_cli.config import (
    STANDARD_ANGLES,
    STANDARD_SCALES,
    ObjectiveSpec,
    ParamSpec,
    Spec,
    TransformSpec,
    apply_override,
    json_schema,
    load_spec,
    load_yaml,
    parse_spec,
    spec_to_dict,
    standard_transforms,
)
from featviz_cli.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent

Mutation = Callable[[dict[str, Any]], None]


def _spec_error(data: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return info.value


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _yaml_file(tmp_path: Path, data: dict[str, Any]) -> Path:
    return _write(tmp_path, yaml.safe_dump(data))


def _set(**values: Any) -> Mutation:
    return lambda d: d.update(values)


def _set_in(section: str, **values: Any) -> Mutation:
    return lambda d: d.setdefault(section, {}).update(values)


def _objective(**values: Any) -> Mutation:
    return lambda d: d.update(objective=values)


def _without(*keys: str) -> Mutation:
    return lambda d: [d["objective"].pop(k) for k in keys]


# ---------------------------------------------------------------- bad input: field and fix in the message

# (id, change to the valid tiny spec, field named by the error, text of the fix)
BAD_INPUTS: list[tuple[str, Mutation, str, str]] = [
    # unknown keys, with a suggestion for a typo, or the known keys when nothing is close
    ("typo-top-level", _set(stpes=3), "stpes", "Did you mean 'steps'?"),
    ("typo-nested", _set_in("param", szie=16), "param.szie", "Did you mean 'size'?"),
    ("typo-optimizer", _set_in("optimizer", lerning_rate=0.1), "optimizer.lerning_rate", "Known keys: type, lr"),
    ("unknown-top-level", _set(zzzz=1), "zzzz", "Known keys: model, objective, param"),
    # wrong types
    ("string-for-int", _set(steps="ten"), "steps", "expected an integer, got a string 'ten'"),
    ("bool-for-int", _set(steps=True), "steps", "expected an integer, got a boolean True"),
    ("float-for-int", _set(steps=3.5), "steps", "expected an integer"),
    ("list-for-mapping", _set(param=[16]), "param", "must be a mapping (key: value), got a list"),
    ("string-for-mapping", _set(model="test_tiny"), "model", "must be a mapping (key: value), got a string"),
    ("mapping-for-list", _set(thresholds={"a": 1}), "thresholds", "expected a list, got a mapping"),
    ("string-for-float", _set_in("optimizer", lr="fast"), "optimizer.lr", "expected a number"),
    ("int-for-bool", _set_in("param", decorrelate=1), "param.decorrelate", "expected true or false"),
    ("int-for-string", _set(name=5), "name", "expected a string"),
    ("list-for-kwargs", _set_in("model", kwargs=[1]), "model.kwargs", "expected a mapping"),
    ("string-objective", _set(objective="channel"), "objective", "expected a list"),
    ("empty-objective-list", _set(objective=[]), "objective", "at least 1 item"),
    ("objective-item-not-mapping", _set(objective=[5]), "objective", "must be a mapping"),
    ("transform-item-not-mapping", _set(transforms=["pad"]), "transforms[0]", "must be a mapping"),
    # out of range
    ("size-too-small", _set_in("param", size=4), "param.size", "must be >= 8, got 4"),
    ("size-too-large", _set_in("param", size=5000), "param.size", "must be <= 4096"),
    ("zero-steps", _set(steps=0), "steps", "must be >= 1, got 0"),
    ("negative-lr", _set_in("optimizer", lr=-0.1), "optimizer.lr", "must be > 0"),
    ("zero-lr", _set_in("optimizer", lr=0), "optimizer.lr", "must be > 0"),
    ("huge-lr", _set_in("optimizer", lr=1e38), "optimizer.lr", "must be <= 1000000.0"),
    ("nan-lr", _set_in("optimizer", lr=float("nan")), "optimizer.lr", "must be a finite number"),
    ("inf-sd", _set_in("param", sd=float("inf")), "param.sd", "must be a finite number"),
    ("negative-seed", _set(seed=-1), "seed", "must be >= 0"),
    ("zero-batch", _set_in("param", batch=0), "param.batch", "must be >= 1"),
    ("negative-tv", _set_in("regularizers", tv=-1), "regularizers.tv", "must be >= 0"),
    # Literal choices
    ("bad-param-type", _set_in("param", type="fourier"), "param.type", "is not one of fft, pixel"),
    ("bad-precision", _set(precision="fp64"), "precision", "Did you mean 'fp16'?"),
    ("bad-objective-type", _set(objective=[{"type": "chanel", "layer": "act2", "unit": 3}]), "objective.type",
     "Did you mean 'channel'?"),
    ("bad-pad-mode", _set(transforms=[{"type": "pad", "pixels": 2, "mode": "wrap"}]), "transforms[0].mode",
     "is not one of constant, reflect, replicate"),
    # objective semantics
    ("missing-layer", _without("layer"), "objective.layer", "run 'featviz layers MODEL'"),
    ("missing-unit", _without("unit"), "objective.unit", "give 'units: [..]'"),
    ("unit-and-units", lambda d: d["objective"].update(units=[1, 2]), "objective.units", "either 'unit' or 'units'"),
    ("empty-units", lambda d: (d["objective"].pop("unit"), d["objective"].update(units=[])),
     "objective.units", "must not be empty"),
    ("units-vs-batch", lambda d: (d["objective"].pop("unit"), d["objective"].update(units=[1, 2, 3]),
                                  d["param"].update(batch=2)),
     "objective.units", "has 3 units but the batch has 2 images; make them equal or drop param.batch"),
    ("batch-index-out-of-range", lambda d: (d["objective"].update(batch=2), d["param"].update(batch=2)),
     "objective.batch", "2 is out of range for a batch of 2 (0..1)"),
    ("batch-index-default-batch", lambda d: d["objective"].update(batch=1), "objective.batch", "(0..0)"),
    ("negative-unit", lambda d: d["objective"].update(unit=-1), "objective.unit", "must be >= 0"),
    ("class-name-for-channel", lambda d: d["objective"].update(unit="class3"), "objective.unit",
     "must be an integer index for type 'channel'"),
    ("unit-for-deepdream", _objective(type="deepdream", layer="act2", unit=3), "objective.unit",
     "takes no unit; remove it"),
    ("xy-for-channel", lambda d: d["objective"].update(x=1), "objective.x", "only type 'neuron' takes x/y"),
    ("vector-for-channel", lambda d: d["objective"].update(vector=[1.0, 0.0]), "objective.vector",
     "only type 'direction' takes a vector"),
    ("direction-no-vector", _objective(type="direction", layer="act2"), "objective.vector",
     "exactly one of 'vector', 'vector_file' or 'random_seed'"),
    ("direction-two-vectors", _objective(type="direction", layer="act2", vector=[1.0] * 16, random_seed=1),
     "objective.vector", "exactly one of 'vector', 'vector_file' or 'random_seed'"),
    ("logit-without-unit", _objective(type="logit"), "objective.unit", "required for type 'logit'"),
    ("second-term-missing-layer",
     _set(objective=[{"type": "channel", "layer": "act2", "unit": 3}, {"type": "channel", "unit": 1}]),
     "objective[1].layer", "required for type 'channel'"),
    # transforms missing required values
    ("pad-without-pixels", _set(transforms=[{"type": "pad"}]), "transforms[0].pixels", "required for 'pad'"),
    ("jitter-without-pixels", _set(transforms=[{"type": "pad", "pixels": 2}, {"type": "jitter"}]),
     "transforms[1].pixels", "required for 'jitter'"),
    ("scale-without-factors", _set(transforms=[{"type": "scale"}]), "transforms[0].factors", "e.g. [0.9, 1.0, 1.1]"),
    ("scale-factor-zero", _set(transforms=[{"type": "scale", "factors": [1.0, 0]}]), "transforms[0].factors",
     "must be > 0"),
    ("rotate-without-degrees", _set(transforms=[{"type": "rotate"}]), "transforms[0].degrees", "e.g. [-10, 0, 10]"),
    ("transform-without-type", _set(transforms=[{"pixels": 3}]), "transforms[0].type", "this key is required"),
    ("negative-pixels", _set(transforms=[{"type": "jitter", "pixels": -1}]), "transforms[0].pixels", "must be >= 0"),
    # thresholds, device, model preprocessing
    ("threshold-zero", _set(thresholds=[0]), "thresholds[0]", "0 is outside 1..steps (4)"),
    ("threshold-past-steps", _set(thresholds=[2, 5]), "thresholds[1]", "5 is outside 1..steps (4)"),
    ("device-gpu", _set(device="gpu"), "device", "use auto, cpu, cuda, cuda:N or mps"),
    ("device-cuda-x", _set(device="cuda:x"), "device", "use auto, cpu, cuda, cuda:N or mps"),
    ("device-cuda-colon", _set(device="cuda:"), "device", "use auto, cpu, cuda, cuda:N or mps"),
    ("mean-two-values", _set_in("model", mean=[0.5, 0.5]), "model.mean", "needs 3 values (R, G, B), got 2"),
    ("std-four-values", _set_in("model", std=[0.2] * 4), "model.std", "needs 3 values (R, G, B), got 4"),
    ("std-zero", _set_in("model", std=[0.2, 0.2, 0]), "model.std", "must be > 0"),
    ("value-range-reversed", _set_in("model", value_range=[255, 0]), "model.value_range", "low < high"),
    ("value-range-three", _set_in("model", value_range=[0, 1, 2]), "model.value_range", "[low, high]"),
    ("input-size-zero", _set_in("model", input_size=0), "model.input_size", "must be > 0"),
]


@pytest.mark.parametrize(("mutate", "field", "fix"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_field_and_fix(tiny_spec: dict, mutate: Mutation, field: str, fix: str) -> None:
    data = copy.deepcopy(tiny_spec)
    mutate(data)
    err = _spec_error(data)
    assert err.field == field
    assert str(err).startswith(f"{field}: ")
    assert fix in str(err)
    assert err.exit_code == 2


def test_the_tiny_spec_itself_is_valid(tiny_spec: dict) -> None:
    """The base of every bad-input case above is valid, so each error comes from its one change."""
    spec = parse_spec(copy.deepcopy(tiny_spec))
    assert (spec.model.name, spec.objective[0].layer, spec.objective[0].unit) == ("test_tiny", "act2", 3)
    assert (spec.param.size, spec.steps, spec.device) == (16, 4, "cpu")


def test_missing_objective(tiny_spec: dict) -> None:
    tiny_spec.pop("objective")
    err = _spec_error(tiny_spec)
    assert err.field == "objective"
    assert "missing; add e.g. 'objective: {type: channel, layer: <name>, unit: 0}'" in str(err)


def test_parse_spec_does_not_change_its_input(tiny_spec: dict) -> None:
    before = copy.deepcopy(tiny_spec)
    parse_spec(tiny_spec)
    assert tiny_spec == before


def test_union_type_error_reads_as_yaml(tiny_spec: dict) -> None:
    tiny_spec["objective"]["unit"] = True
    err = _spec_error(tiny_spec)
    assert "expected an integer or a string" in str(err)
    assert "NoneType" not in str(err) and "<class" not in str(err)


def test_bad_value_in_units_names_units(tiny_spec: dict) -> None:
    tiny_spec["objective"] = {"type": "channel", "layer": "act2", "units": [1, -2]}
    err = _spec_error(tiny_spec)
    assert "must be >= 0, got -2" in str(err)
    assert err.field.startswith("objective.units")


def test_single_objective_fields_named_one_way(tiny_spec: dict) -> None:
    tiny_spec["objective"]["unit"] = 2.5  # a type error
    type_err = _spec_error(copy.deepcopy(tiny_spec))
    tiny_spec["objective"]["unit"] = -1  # a semantic error on the same field
    range_err = _spec_error(tiny_spec)
    assert range_err.field == "objective.unit"
    assert type_err.field == range_err.field


# ---------------------------------------------------------------- YAML files


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "model: {name: test_tiny}\nsteps: 4\nparam:\n  size: 16\n bad: [1, 2\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line 5, column 2: YAML syntax error")
    assert "Fix the YAML syntax there" in msg


def test_yaml_unclosed_flow_mapping_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "steps: 4\nobjective: {type: channel, layer: act2\n")
    with pytest.raises(SpecError, match=r"spec\.yaml: line \d+, column \d+: YAML syntax error"):
        load_spec(path)


@pytest.mark.parametrize(("text", "got"), [("- 1\n- 2\n", "a list"), ("just words\n", "a string"), ("42\n", "an integer")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: the spec must be a YAML mapping (key: value), got {got}."


def test_empty_file_asks_for_an_objective(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, ""))
    assert info.value.field == "objective"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file; check the path"):
        load_yaml(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="cannot read"):
        load_yaml(tmp_path)


def test_python_object_tags_are_refused_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _write(
        tmp_path,
        "objective: {type: channel, layer: act2, unit: 3}\n"
        f"name: !!python/object/apply:os.system ['touch {marker}']\n",
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert not marker.exists()
    msg = str(info.value)
    assert str(path) in msg and "line 2" in msg
    assert "python/object/apply:os.system" in msg


def test_python_object_tag_on_a_mapping_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "objective: !!python/object:builtins.dict {}\n")
    with pytest.raises(SpecError, match="could not determine a constructor"):
        load_spec(path)


def test_loads_a_file_with_every_section(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
name: full
model: {name: test_tiny, weights: none, kwargs: {width: 4}, mean: [0.4, 0.4, 0.4], value_range: [0, 1]}
objective:
  - {type: neuron, layer: act2, units: [1, 2], x: 3, y: 4, weight: 2}
  - {type: logit, unit: class3, weight: -0.5, batch: 1}
param: {type: pixel, size: 24, batch: 2, output: clamp, decorrelate: false}
transforms:
  - {type: pad, pixels: 4, mode: reflect}
  - {type: rotate, degrees: [-5, 5]}
regularizers: {tv: 0.1, blur_every: 4}
optimizer: {lr: 0.5}
steps: 8
thresholds: [2, 8]
seed: 7
device: cuda:1
precision: bf16
output: {dir: somewhere, grid: false}
""",
    )
    spec = load_spec(path)
    assert spec.name == "full"
    assert spec.model.kwargs == {"width": 4} and spec.model.weights == "none"
    assert spec.objective[0] == ObjectiveSpec(type="neuron", layer="act2", units=[1, 2], x=3, y=4, weight=2.0)
    assert spec.objective[1].unit == "class3" and spec.objective[1].batch == 1
    assert isinstance(spec.objective[0].weight, float)
    assert spec.param == ParamSpec(type="pixel", size=24, batch=2, output="clamp", decorrelate=False)
    assert spec.transforms == [
        TransformSpec(type="pad", pixels=4, mode="reflect"),
        TransformSpec(type="rotate", degrees=[-5.0, 5.0]),
    ]
    assert (spec.regularizers.tv, spec.regularizers.blur_every, spec.optimizer.lr) == (0.1, 4, 0.5)
    assert (spec.steps, spec.thresholds, spec.seed, spec.device, spec.precision) == (8, [2, 8], 7, "cuda:1", "bf16")
    assert (spec.output.dir, spec.output.grid, spec.output.images) == ("somewhere", False, True)


def test_exponent_without_dot_is_a_number(tmp_path: Path) -> None:
    path = _write(tmp_path, "objective: {type: channel, layer: act2, unit: 3}\noptimizer: {lr: 1e-3}\n")
    assert load_spec(path).optimizer.lr == pytest.approx(0.001)


# ---------------------------------------------------------------- valid forms and defaults


def test_objective_mapping_and_list_are_the_same(tiny_spec: dict) -> None:
    as_map = parse_spec(copy.deepcopy(tiny_spec))
    tiny_spec["objective"] = [tiny_spec["objective"]]
    as_list = parse_spec(tiny_spec)
    assert as_map.objective == as_list.objective == [ObjectiveSpec(type="channel", layer="act2", unit=3)]


def test_objective_list_of_terms(tiny_spec: dict) -> None:
    tiny_spec["objective"] = [
        {"type": "channel", "layer": "act2", "units": [0, 1]},
        {"type": "logit", "unit": "class3", "weight": -1},
        {"type": "direction", "layer": "act3", "random_seed": 5},
    ]
    spec = parse_spec(tiny_spec)
    assert [t.type for t in spec.objective] == ["channel", "logit", "direction"]
    assert spec.objective[1].weight == -1.0
    assert spec.objective[2].random_seed == 5


def test_defaults(tiny_spec: dict) -> None:
    spec = parse_spec({"objective": tiny_spec["objective"]})
    assert spec.model.name == "efficientnet_lite0"
    assert (spec.param.type, spec.param.size, spec.param.output, spec.param.decorrelate) == ("fft", 128, "sigmoid", True)
    assert (spec.optimizer.type, spec.optimizer.lr) == ("adam", 0.05)
    assert (spec.steps, spec.seed, spec.device, spec.precision) == (512, 0, "auto", "auto")
    assert spec.thresholds == [] and spec.resize_to_model is True
    assert spec.objective[0].weight == 1.0


def test_standard_transforms_are_lucids() -> None:
    t = standard_transforms()
    assert [x.type for x in t] == ["pad", "jitter", "scale", "rotate", "jitter"]
    assert (t[0].pixels, t[0].mode, t[0].value) == (12, "constant", 0.5)
    assert t[1].pixels == 8 and t[4].pixels == 4
    assert t[2].factors == pytest.approx([0.9, 0.92, 0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06, 1.08, 1.1])
    assert len(t[2].factors) == 11
    assert t[3].degrees == [float(a) for a in range(-10, 11)] + [0.0] * 5
    assert STANDARD_SCALES == t[2].factors and STANDARD_ANGLES == t[3].degrees


@pytest.mark.parametrize("given", ["absent", "standard"])
def test_standard_transforms_by_default_and_by_name(tiny_spec: dict, given: str) -> None:
    if given == "standard":
        tiny_spec["transforms"] = "standard"
    assert parse_spec(tiny_spec).transforms == standard_transforms()


@pytest.mark.parametrize("given", ["none", [], None, False])
def test_no_transforms(tiny_spec: dict, given: Any) -> None:
    tiny_spec["transforms"] = given
    assert parse_spec(tiny_spec).transforms == []


def test_explicit_transforms_list(tiny_spec: dict) -> None:
    tiny_spec["transforms"] = [{"type": "jitter", "pixels": 2}, {"type": "scale", "factors": [1, 1.5]}]
    assert parse_spec(tiny_spec).transforms == [
        TransformSpec(type="jitter", pixels=2),
        TransformSpec(type="scale", factors=[1.0, 1.5]),
    ]


def test_default_transforms_are_not_shared(tiny_spec: dict) -> None:
    a = parse_spec(copy.deepcopy(tiny_spec))
    a.transforms[2].factors.append(9.0)
    a.transforms.pop()
    b = parse_spec(tiny_spec)
    assert b.transforms == standard_transforms()
    assert len(b.transforms[2].factors) == 11


def test_misspelt_transforms_name_suggests_standard(tiny_spec: dict) -> None:
    tiny_spec["transforms"] = "standrd"
    err = _spec_error(tiny_spec)
    assert err.field == "transforms"
    assert "standard" in str(err) and "none" in str(err)


def test_valid_edge_values(tiny_spec: dict) -> None:
    tiny_spec.update(steps=1, seed=0, thresholds=[1], device="cuda:0")
    tiny_spec["param"].update(size=8)
    tiny_spec["objective"].update(batch=0)
    spec = parse_spec(tiny_spec)
    assert (spec.steps, spec.param.size, spec.thresholds, spec.objective[0].batch) == (1, 8, [1], 0)
    tiny_spec["param"]["size"] = 4096
    assert parse_spec(tiny_spec).param.size == 4096


def test_integral_float_is_an_int(tiny_spec: dict) -> None:
    tiny_spec["steps"] = 3.0
    steps = parse_spec(tiny_spec).steps
    assert steps == 3 and type(steps) is int


def test_int_for_float_becomes_float(tiny_spec: dict) -> None:
    tiny_spec["optimizer"] = {"lr": 1}
    lr = parse_spec(tiny_spec).optimizer.lr
    assert lr == 1.0 and type(lr) is float


def test_units_set_the_batch(tiny_spec: dict) -> None:
    tiny_spec["objective"] = {"type": "channel", "layer": "act2", "units": [0, 1, 2], "batch": 2}
    spec = parse_spec(tiny_spec)
    assert spec.objective[0].units == [0, 1, 2] and spec.param.batch is None


def test_logit_takes_class_names(tiny_spec: dict) -> None:
    tiny_spec["objective"] = {"type": "probability", "units": ["class1", 4]}
    assert parse_spec(tiny_spec).objective[0].units == ["class1", 4]


def test_spec_to_dict_round_trips(tiny_spec: dict) -> None:
    spec = parse_spec(tiny_spec)
    plain = spec_to_dict(spec)
    json.dumps(plain)  # plain data only
    assert parse_spec(plain) == spec


# ---------------------------------------------------------------- --set overrides and CLI keywords

BASE_YAML = "model: {name: test_tiny}\nobjective: {type: channel, layer: act2, unit: 3}\nparam: {size: 16}\nsteps: 4\n"
LIST_YAML = "objective:\n  - {type: channel, layer: act2, unit: 3}\n  - {type: logit, unit: 1}\nsteps: 4\n"


def test_override_nested_keys(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, BASE_YAML), ["param.size=24", "steps=7", "optimizer.lr=0.5", "model.kwargs.width=4"])
    assert (spec.param.size, spec.steps, spec.optimizer.lr) == (24, 7, 0.5)
    assert spec.model.kwargs == {"width": 4}
    assert spec.model.name == "test_tiny"  # untouched siblings stay


def test_override_list_index(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, LIST_YAML), ["objective.0.unit=5", "objective.1.weight=-2"])
    assert spec.objective[0].unit == 5 and spec.objective[0].layer == "act2"
    assert spec.objective[1].weight == -2.0


def test_override_whole_list_item(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, LIST_YAML), ["objective.1={type: deepdream, layer: act3}"])
    assert spec.objective[1] == ObjectiveSpec(type="deepdream", layer="act3")


@pytest.mark.parametrize(
    ("item", "get", "value"),
    [
        ("param.decorrelate=false", lambda s: s.param.decorrelate, False),
        ("param.decorrelate=no", lambda s: s.param.decorrelate, False),
        ("model.mean=[0.1, 0.2, 0.3]", lambda s: s.model.mean, [0.1, 0.2, 0.3]),
        ("optimizer.lr=1.0e-3", lambda s: s.optimizer.lr, 0.001),
        ("name='007'", lambda s: s.name, "007"),
        ("name=a=b", lambda s: s.name, "a=b"),
        ("thresholds=[1, 4]", lambda s: s.thresholds, [1, 4]),
        ("model.weights=null", lambda s: s.model.weights, None),
        ("objective={type: logit, unit: class4}", lambda s: s.objective[0].unit, "class4"),
    ],
)
def test_override_values_are_yaml_typed(tmp_path: Path, item: str, get: Callable[[Spec], Any], value: Any) -> None:
    text = BASE_YAML.replace("{name: test_tiny}", "{name: test_tiny, weights: DEFAULT}")
    spec = load_spec(_write(tmp_path, text), [item])
    got = get(spec)
    assert got == value and type(got) is type(value)


def test_override_with_the_wrong_type_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, BASE_YAML), ["param.size='24'"])
    assert info.value.field == "param.size" and "expected an integer, got a string '24'" in str(info.value)


@pytest.mark.parametrize(
    ("item", "field", "fix"),
    [
        ("steps", "--set", "is not key.path=value (e.g. --set param.size=64)"),
        ("=3", "--set", "is an empty key"),
        ("steps=[1", "steps", "cannot parse --set value '[1' as YAML"),
        ("steps.x=3", "steps.x", "cannot set a key inside a non-mapping value"),
        ("stpes=3", "stpes", "Did you mean 'steps'?"),
    ],
)
def test_malformed_overrides(tmp_path: Path, item: str, field: str, fix: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, BASE_YAML), [item])
    assert info.value.field == field
    assert fix in str(info.value)


def test_apply_override_on_a_dict() -> None:
    data: dict[str, Any] = {"param": {"size": 16}}
    apply_override(data, "param.size=32")
    apply_override(data, "regularizers.tv=0.5")
    assert data == {"param": {"size": 32}, "regularizers": {"tv": 0.5}}


def test_override_index_on_single_mapping_objective(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, BASE_YAML), ["objective.0.unit=5"])
    assert spec.objective[0].unit == 5


def test_override_index_out_of_range_says_so(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, LIST_YAML), ["objective.3.unit=5"])
    assert "non-mapping" not in str(info.value)
    assert "0..1" in str(info.value) or "2 item" in str(info.value)


def test_override_index_into_default_transforms(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, BASE_YAML), ["transforms.0.pixels=3"])
    assert spec.transforms[0].pixels == 3


def test_cli_keywords_stay_typed(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, BASE_YAML), steps=3, seed=9, device="cpu")
    assert (spec.steps, spec.seed, spec.device) == (3, 9, "cpu")
    assert type(spec.steps) is int and type(spec.seed) is int


def test_cli_keywords_none_leave_the_file_value(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, BASE_YAML + "seed: 5\n"), steps=None, seed=None, device=None)
    assert (spec.steps, spec.seed, spec.device) == (4, 5, "auto")


def test_cli_keywords_win_over_set(tmp_path: Path) -> None:
    assert load_spec(_write(tmp_path, BASE_YAML), ["steps=9"], steps=3).steps == 3


def test_cli_keywords_are_validated(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, BASE_YAML), device="gpu")
    assert info.value.field == "device"


def test_overrides_do_not_touch_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE_YAML)
    load_spec(path, ["steps=9"], seed=3)
    assert path.read_text() == BASE_YAML


# ---------------------------------------------------------------- JSON Schema


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


def _config_files() -> list[Path]:
    return sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", _config_files(), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    spec = load_spec(path)
    assert spec.objective


@pytest.mark.parametrize("path", _config_files(), ids=lambda p: p.name)
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
