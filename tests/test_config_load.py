"""Loading a spec: YAML files, the forms of objective and transforms, --set overrides, CLI keywords."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest

from featviz_cli.config.load import apply_override, load_spec, load_yaml, parse_spec
from featviz_cli.config.spec import ObjectiveSpec, ParamSpec, Spec, TransformSpec, standard_transforms
from featviz_cli.errors import SpecError
from spec_helpers import BadInput, Mutation, assert_names_field_and_fix, bad_input_params, set_top, spec_error, write

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))

BAD_INPUTS: list[BadInput] = [
    ("string-objective", set_top(objective="channel"), "objective", "expected a list"),
    ("empty-objective-list", set_top(objective=[]), "objective", "at least 1 item"),
]


@pytest.mark.parametrize(("mutate", "field", "fix"), bad_input_params(BAD_INPUTS))
def test_bad_input_names_field_and_fix(tiny_spec: dict, mutate: Mutation, field: str, fix: str) -> None:
    assert_names_field_and_fix(tiny_spec, mutate, field, fix)


def test_the_tiny_spec_itself_is_valid(tiny_spec: dict) -> None:
    """The base of every bad-input case (here and in the coerce and rules tests) is valid,
    so each error comes from its one change."""
    spec = parse_spec(copy.deepcopy(tiny_spec))
    assert (spec.model.name, spec.objective[0].layer, spec.objective[0].unit) == ("test_tiny", "act2", 3)
    assert (spec.param.size, spec.steps, spec.device) == (16, 4, "cpu")


def test_missing_objective(tiny_spec: dict) -> None:
    tiny_spec.pop("objective")
    err = spec_error(tiny_spec)
    assert err.field == "objective"
    assert "missing; add e.g. 'objective: {type: channel, layer: <name>, unit: 0}'" in str(err)


def test_parse_spec_does_not_change_its_input(tiny_spec: dict) -> None:
    before = copy.deepcopy(tiny_spec)
    parse_spec(tiny_spec)
    assert tiny_spec == before


# ---------------------------------------------------------------- YAML files


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "model: {name: test_tiny}\nsteps: 4\nparam:\n  size: 16\n bad: [1, 2\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line 5, column 2: YAML syntax error")
    assert "Fix the YAML syntax there" in msg


def test_yaml_unclosed_flow_mapping_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "steps: 4\nobjective: {type: channel, layer: act2\n")
    with pytest.raises(SpecError, match=r"spec\.yaml: line \d+, column \d+: YAML syntax error"):
        load_spec(path)


@pytest.mark.parametrize(("text", "got"), [("- 1\n- 2\n", "a list"), ("just words\n", "a string"), ("42\n", "an integer")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: the spec must be a YAML mapping (key: value), got {got}."


def test_empty_file_asks_for_an_objective(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, ""))
    assert info.value.field == "objective"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file; check the path"):
        load_yaml(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="cannot read"):
        load_yaml(tmp_path)


def test_python_object_tags_are_refused_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write(
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
    path = write(tmp_path, "objective: !!python/object:builtins.dict {}\n")
    with pytest.raises(SpecError, match="could not determine a constructor"):
        load_spec(path)


def test_loads_a_file_with_every_section(tmp_path: Path) -> None:
    path = write(
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
    path = write(tmp_path, "objective: {type: channel, layer: act2, unit: 3}\noptimizer: {lr: 1e-3}\n")
    assert load_spec(path).optimizer.lr == pytest.approx(0.001)


# ---------------------------------------------------------------- the shipped configs


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    spec = load_spec(path)
    assert spec.objective


TECHNIQUE_CONFIGS = {
    "diversity": lambda s: any(t.type == "diversity" for t in s.objective),
    "interpolation": lambda s: s.interpolate is not None and any(t.type == "alignment" for t in s.objective),
    "generator": lambda s: s.param.type == "generator",
    "cppn": lambda s: s.param.type == "cppn",
    "maco": lambda s: s.param.type == "maco" and any(t.type == "crops" for t in s.transforms),
    "photo": lambda s: s.param.init_image is not None,
    "accentuation": lambda s: s.regularizers.features is not None,
    "steepest": lambda s: s.optimizer.type == "sign",
    "direction": lambda s: s.objective[0].random_seed is not None,
}


def test_each_technique_has_an_example_config() -> None:
    for name, uses in TECHNIQUE_CONFIGS.items():
        assert uses(load_spec(ROOT / "configs" / f"{name}.yaml")), name


# ---------------------------------------------------------------- the forms of objective and transforms


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


def test_misspelt_transforms_name_suggests_standard(tiny_spec: dict) -> None:
    tiny_spec["transforms"] = "standrd"
    err = spec_error(tiny_spec)
    assert err.field == "transforms"
    assert "standard" in str(err) and "none" in str(err)


# ---------------------------------------------------------------- --set overrides and CLI keywords

BASE_YAML = "model: {name: test_tiny}\nobjective: {type: channel, layer: act2, unit: 3}\nparam: {size: 16}\nsteps: 4\n"
LIST_YAML = "objective:\n  - {type: channel, layer: act2, unit: 3}\n  - {type: logit, unit: 1}\nsteps: 4\n"


def test_override_nested_keys(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, BASE_YAML), ["param.size=24", "steps=7", "optimizer.lr=0.5", "model.kwargs.width=4"])
    assert (spec.param.size, spec.steps, spec.optimizer.lr) == (24, 7, 0.5)
    assert spec.model.kwargs == {"width": 4}
    assert spec.model.name == "test_tiny"  # untouched siblings stay


def test_override_list_index(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, LIST_YAML), ["objective.0.unit=5", "objective.1.weight=-2"])
    assert spec.objective[0].unit == 5 and spec.objective[0].layer == "act2"
    assert spec.objective[1].weight == -2.0


def test_override_whole_list_item(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, LIST_YAML), ["objective.1={type: deepdream, layer: act3}"])
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
    spec = load_spec(write(tmp_path, text), [item])
    got = get(spec)
    assert got == value and type(got) is type(value)


def test_override_with_the_wrong_type_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, BASE_YAML), ["param.size='24'"])
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
        load_spec(write(tmp_path, BASE_YAML), [item])
    assert info.value.field == field
    assert fix in str(info.value)


def test_apply_override_on_a_dict() -> None:
    data: dict[str, Any] = {"param": {"size": 16}}
    apply_override(data, "param.size=32")
    apply_override(data, "regularizers.tv=0.5")
    assert data == {"param": {"size": 32}, "regularizers": {"tv": 0.5}}


def test_override_index_on_single_mapping_objective(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, BASE_YAML), ["objective.0.unit=5"])
    assert spec.objective[0].unit == 5


def test_override_index_out_of_range_says_so(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, LIST_YAML), ["objective.3.unit=5"])
    assert "non-mapping" not in str(info.value)
    assert "0..1" in str(info.value) or "2 item" in str(info.value)


def test_override_index_into_default_transforms(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, BASE_YAML), ["transforms.0.pixels=3"])
    assert spec.transforms[0].pixels == 3


def test_cli_keywords_stay_typed(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, BASE_YAML), steps=3, seed=9, device="cpu")
    assert (spec.steps, spec.seed, spec.device) == (3, 9, "cpu")
    assert type(spec.steps) is int and type(spec.seed) is int


def test_cli_keywords_none_leave_the_file_value(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, BASE_YAML + "seed: 5\n"), steps=None, seed=None, device=None)
    assert (spec.steps, spec.seed, spec.device) == (4, 5, "auto")


def test_cli_keywords_win_over_set(tmp_path: Path) -> None:
    assert load_spec(write(tmp_path, BASE_YAML), ["steps=9"], steps=3).steps == 3


def test_cli_keywords_are_validated(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, BASE_YAML), device="gpu")
    assert info.value.field == "device"


def test_overrides_do_not_touch_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, BASE_YAML)
    load_spec(path, ["steps=9"], seed=3)
    assert path.read_text() == BASE_YAML
