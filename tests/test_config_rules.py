"""Cross-field rules: what types alone cannot say, named by field, with the fix; the batch size."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from featviz_cli.config.load import parse_spec
from featviz_cli.config.rules import batch_size
from spec_helpers import (
    BadInput,
    Mutation,
    assert_names_field_and_fix,
    bad_input_params,
    objective,
    set_in,
    set_top,
    spec_error,
    without,
)

BAD_INPUTS: list[BadInput] = [
    # objective semantics
    ("missing-layer", without("layer"), "objective.layer", "run 'featviz layers MODEL'"),
    ("missing-unit", without("unit"), "objective.unit", "give 'units: [..]'"),
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
    ("unit-for-deepdream", objective(type="deepdream", layer="act2", unit=3), "objective.unit",
     "takes no unit; remove it"),
    ("xy-for-channel", lambda d: d["objective"].update(x=1), "objective.x", "only type 'neuron' takes x/y"),
    ("vector-for-channel", lambda d: d["objective"].update(vector=[1.0, 0.0]), "objective.vector",
     "only type 'direction' takes a vector"),
    ("direction-no-vector", objective(type="direction", layer="act2"), "objective.vector",
     "exactly one of 'vector', 'vector_file' or 'random_seed'"),
    ("direction-two-vectors", objective(type="direction", layer="act2", vector=[1.0] * 16, random_seed=1),
     "objective.vector", "exactly one of 'vector', 'vector_file' or 'random_seed'"),
    ("unit-for-direction-vector", objective(type="direction", layer="act2", random_seed=1, units="all"),
     "objective.unit", "type 'direction' takes no unit (direction: rows of a vector_file matrix); remove it"),
    ("vector-key-without-file", objective(type="direction", layer="act2", random_seed=1, vector_key="W_dec"),
     "objective.vector_key", "names a tensor of vector_file; give vector_file too"),
    ("vector-key-for-channel", lambda d: d["objective"].update(vector_key="W"), "objective.vector",
     "only type 'direction' takes a vector"),
    ("logit-without-unit", objective(type="logit"), "objective.unit", "required for type 'logit'"),
    ("second-term-missing-layer",
     set_top(objective=[{"type": "channel", "layer": "act2", "unit": 3}, {"type": "channel", "unit": 1}]),
     "objective[1].layer", "required for type 'channel'"),
    # transforms missing required values
    ("pad-without-pixels", set_top(transforms=[{"type": "pad"}]), "transforms[0].pixels", "required for 'pad'"),
    ("jitter-without-pixels", set_top(transforms=[{"type": "pad", "pixels": 2}, {"type": "jitter"}]),
     "transforms[1].pixels", "required for 'jitter'"),
    ("scale-without-factors", set_top(transforms=[{"type": "scale"}]), "transforms[0].factors",
     "e.g. [0.9, 1.0, 1.1]"),
    ("scale-factor-zero", set_top(transforms=[{"type": "scale", "factors": [1.0, 0]}]), "transforms[0].factors",
     "must be > 0"),
    ("rotate-without-degrees", set_top(transforms=[{"type": "rotate"}]), "transforms[0].degrees",
     "e.g. [-10, 0, 10]"),
    # thresholds, device, model preprocessing
    ("threshold-zero", set_top(thresholds=[0]), "thresholds[0]", "0 is outside 1..steps (4)"),
    ("threshold-past-steps", set_top(thresholds=[2, 5]), "thresholds[1]", "5 is outside 1..steps (4)"),
    ("device-gpu", set_top(device="gpu"), "device", "use auto, cpu, cuda, cuda:N or mps"),
    ("device-cuda-x", set_top(device="cuda:x"), "device", "use auto, cpu, cuda, cuda:N or mps"),
    ("device-cuda-colon", set_top(device="cuda:"), "device", "use auto, cpu, cuda, cuda:N or mps"),
    ("mean-two-values", set_in("model", mean=[0.5, 0.5]), "model.mean", "needs 3 values (R, G, B), got 2"),
    ("std-four-values", set_in("model", std=[0.2] * 4), "model.std", "needs 3 values (R, G, B), got 4"),
    ("std-zero", set_in("model", std=[0.2, 0.2, 0]), "model.std", "must be > 0"),
    ("value-range-reversed", set_in("model", value_range=[255, 0]), "model.value_range", "low < high"),
    ("value-range-three", set_in("model", value_range=[0, 1, 2]), "model.value_range", "[low, high]"),
    # feature accentuation, crop centres
    ("features-without-photo", set_in("regularizers", features={"layer": "act1", "weight": 3}),
     "regularizers.features", "needs param.init_image"),
    ("features-without-layer", set_in("regularizers", features={"weight": 3}), "regularizers.features.layer",
     "missing; this key is required"),
    ("features-empty-layer", lambda d: (d["param"].update(init_image="photo.jpg"),
                                        d.setdefault("regularizers", {}).update(features={"layer": " "})),
     "regularizers.features.layer", "featviz layers MODEL"),
    ("features-negative-weight", set_in("regularizers", features={"layer": "act1", "weight": -1}),
     "regularizers.features.weight", ">= 0"),
    ("centres-not-crops", set_top(transforms=[{"type": "jitter", "pixels": 2, "centres": "uniform"}]),
     "transforms[0].centres", "only 'crops' takes centres"),
    ("centres-unknown", set_top(transforms=[{"type": "crops", "centres": "random"}]), "transforms[0].centres",
     "is not one of normal, uniform"),
]


@pytest.mark.parametrize(("mutate", "field", "fix"), bad_input_params(BAD_INPUTS))
def test_bad_input_names_field_and_fix(tiny_spec: dict, mutate: Mutation, field: str, fix: str) -> None:
    assert_names_field_and_fix(tiny_spec, mutate, field, fix)


def test_bad_value_in_units_names_units(tiny_spec: dict) -> None:
    tiny_spec["objective"] = {"type": "channel", "layer": "act2", "units": [1, -2]}
    err = spec_error(tiny_spec)
    assert "must be >= 0, got -2" in str(err)
    assert err.field.startswith("objective.units")


def test_single_objective_fields_named_one_way(tiny_spec: dict) -> None:
    tiny_spec["objective"]["unit"] = 2.5  # a type error
    type_err = spec_error(copy.deepcopy(tiny_spec))
    tiny_spec["objective"]["unit"] = -1  # a semantic error on the same field
    range_err = spec_error(tiny_spec)
    assert range_err.field == "objective.unit"
    assert type_err.field == range_err.field


def test_units_set_the_batch(tiny_spec: dict) -> None:
    tiny_spec["objective"] = {"type": "channel", "layer": "act2", "units": [0, 1, 2], "batch": 2}
    spec = parse_spec(tiny_spec)
    assert spec.objective[0].units == [0, 1, 2] and spec.param.batch is None


def test_logit_takes_class_names(tiny_spec: dict) -> None:
    tiny_spec["objective"] = {"type": "probability", "units": ["class1", 4]}
    assert parse_spec(tiny_spec).objective[0].units == ["class1", 4]


def test_batch_size(tiny_spec: dict[str, Any]) -> None:
    assert batch_size(parse_spec(tiny_spec)) == 1
    assert batch_size(parse_spec({**tiny_spec, "param": {"batch": 4}})) == 4  # K images of one unit
    two = [{"type": "channel", "layer": "act2", "unit": 1}, {"type": "channel", "layer": "act2", "unit": 2}]
    assert batch_size(parse_spec({**tiny_spec, "objective": two, "interpolate": {"frames": 6}})) == 6


def test_feature_accentuation_reads_as_yaml(tiny_spec: dict[str, Any]) -> None:
    spec = parse_spec({**tiny_spec, "param": {"size": 16, "init_image": "photo.jpg"},
                       "regularizers": {"features": {"layer": "act1", "weight": 10}}})
    assert (spec.regularizers.features.layer, spec.regularizers.features.weight) == ("act1", 10.0)
    assert parse_spec(tiny_spec).regularizers.features is None
