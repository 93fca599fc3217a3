"""The typed builder: unknown keys, wrong types, limits and choices, named by field, with the fix."""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from featviz_cli.config.load import parse_spec
from featviz_cli.config.coerce import build, is_required, type_name
from featviz_cli.config.spec import TransformSpec
from featviz_cli.errors import SpecError
from spec_helpers import BadInput, Mutation, assert_names_field_and_fix, bad_input_params, set_in, set_top, spec_error

BAD_INPUTS: list[BadInput] = [
    # unknown keys, with a suggestion for a typo, or the known keys when nothing is close
    ("typo-top-level", set_top(stpes=3), "stpes", "Did you mean 'steps'?"),
    ("typo-nested", set_in("param", szie=16), "param.szie", "Did you mean 'size'?"),
    ("typo-optimizer", set_in("optimizer", lerning_rate=0.1), "optimizer.lerning_rate", "Known keys: type, lr"),
    ("unknown-top-level", set_top(zzzz=1), "zzzz", "Known keys: model, objective, param"),
    # wrong types
    ("string-for-int", set_top(steps="ten"), "steps", "expected an integer, got a string 'ten'"),
    ("bool-for-int", set_top(steps=True), "steps", "expected an integer, got a boolean True"),
    ("float-for-int", set_top(steps=3.5), "steps", "expected an integer"),
    ("list-for-mapping", set_top(param=[16]), "param", "must be a mapping (key: value), got a list"),
    ("string-for-mapping", set_top(model="test_tiny"), "model", "must be a mapping (key: value), got a string"),
    ("mapping-for-list", set_top(thresholds={"a": 1}), "thresholds", "expected a list, got a mapping"),
    ("string-for-float", set_in("optimizer", lr="fast"), "optimizer.lr", "expected a number"),
    ("int-for-bool", set_in("param", decorrelate=1), "param.decorrelate", "expected true or false"),
    ("int-for-string", set_top(name=5), "name", "expected a string"),
    ("list-for-kwargs", set_in("model", kwargs=[1]), "model.kwargs", "expected a mapping"),
    ("objective-item-not-mapping", set_top(objective=[5]), "objective", "must be a mapping"),
    ("transform-item-not-mapping", set_top(transforms=["pad"]), "transforms[0]", "must be a mapping"),
    # out of range
    ("size-too-small", set_in("param", size=4), "param.size", "must be >= 8, got 4"),
    ("size-too-large", set_in("param", size=5000), "param.size", "must be <= 4096"),
    ("zero-steps", set_top(steps=0), "steps", "must be >= 1, got 0"),
    ("negative-lr", set_in("optimizer", lr=-0.1), "optimizer.lr", "must be > 0"),
    ("zero-lr", set_in("optimizer", lr=0), "optimizer.lr", "must be > 0"),
    ("huge-lr", set_in("optimizer", lr=1e38), "optimizer.lr", "must be <= 1000000.0"),
    ("nan-lr", set_in("optimizer", lr=float("nan")), "optimizer.lr", "must be a finite number"),
    ("inf-sd", set_in("param", sd=float("inf")), "param.sd", "must be a finite number"),
    ("negative-seed", set_top(seed=-1), "seed", "must be >= 0"),
    ("zero-batch", set_in("param", batch=0), "param.batch", "must be >= 1"),
    ("negative-tv", set_in("regularizers", tv=-1), "regularizers.tv", "must be >= 0"),
    ("negative-pixels", set_top(transforms=[{"type": "jitter", "pixels": -1}]), "transforms[0].pixels", "must be >= 0"),
    ("input-size-zero", set_in("model", input_size=0), "model.input_size", "must be > 0"),
    # Literal choices
    ("bad-param-type", set_in("param", type="fourier"), "param.type", "is not one of fft, pixel"),
    ("bad-precision", set_top(precision="fp64"), "precision", "Did you mean 'fp16'?"),
    ("bad-objective-type", set_top(objective=[{"type": "chanel", "layer": "act2", "unit": 3}]), "objective.type",
     "Did you mean 'channel'?"),
    ("bad-pad-mode", set_top(transforms=[{"type": "pad", "pixels": 2, "mode": "wrap"}]), "transforms[0].mode",
     "is not one of constant, reflect, replicate"),
    # a required key
    ("transform-without-type", set_top(transforms=[{"pixels": 3}]), "transforms[0].type", "this key is required"),
]


@pytest.mark.parametrize(("mutate", "field", "fix"), bad_input_params(BAD_INPUTS))
def test_bad_input_names_field_and_fix(tiny_spec: dict, mutate: Mutation, field: str, fix: str) -> None:
    assert_names_field_and_fix(tiny_spec, mutate, field, fix)


def test_union_type_error_reads_as_yaml(tiny_spec: dict) -> None:
    tiny_spec["objective"]["unit"] = True
    err = spec_error(tiny_spec)
    assert "expected an integer or a string" in str(err)
    assert "NoneType" not in str(err) and "<class" not in str(err)


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


def test_build_on_its_own_types_the_values_and_prefixes_the_path() -> None:
    data = {"type": "scale", "factors": [1, 2]}
    built = build(TransformSpec, copy.deepcopy(data), "transforms[3]")
    assert built == TransformSpec(type="scale", factors=[1.0, 2.0])
    assert all(type(f) is float for f in built.factors or [])
    with pytest.raises(SpecError) as info:
        build(TransformSpec, {**data, "count": 0}, "transforms[3]")
    assert str(info.value) == "transforms[3].count: must be >= 1, got 0."


def test_type_names_and_required_fields_read_as_yaml() -> None:
    assert [type_name(v) for v in ({}, [], "x", True, 1, 1.5, None)] == [
        "a mapping", "a list", "a string", "a boolean", "an integer", "a number", "null"]
    assert [f.name for f in dataclasses.fields(TransformSpec) if is_required(f)] == ["type"]


@pytest.mark.parametrize(("item", "message"), [
    ("neurn", "sweep.techniques[1]: 'neurn' is not one of channel, neuron. Did you mean 'neuron'?"),
    ({"diverse": 1}, "sweep.techniques[1].diverse: must be >= 2, got 1."),
    ({"divers": 3}, "sweep.techniques[1].divers: unknown key. Did you mean 'diverse'?"),
    (3, "sweep.techniques[1]: expected 'channel' or 'neuron' or a mapping, got an integer 3."),
])
def test_a_word_or_a_mapping_gets_the_error_of_its_own_kind(tiny_spec: dict, item: Any, message: str) -> None:
    """In a union of words and a mapping (sweep.techniques), a misspelt word gets the close match and a
    mapping the mapping's own error, not a list of every alternative."""
    tiny_spec["sweep"] = {"techniques": ["channel", item]}
    with pytest.raises(SpecError) as info:
        parse_spec(tiny_spec)
    assert str(info.value) == message
