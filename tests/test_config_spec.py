"""The spec dataclasses: their defaults, Lucid's standard transforms, and the spec as plain data."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from featviz_cli.config.load import parse_spec
from featviz_cli.config.spec import STANDARD_ANGLES, STANDARD_SCALES, spec_to_dict, standard_transforms


def test_defaults(tiny_spec: dict) -> None:
    spec = parse_spec({"objective": tiny_spec["objective"]})
    assert spec.model.name == "efficientnet_lite0"
    assert (spec.param.type, spec.param.size, spec.param.output, spec.param.decorrelate) == ("fft", 128, "sigmoid", True)
    assert spec.param.decay_power == 1.5
    assert (spec.optimizer.type, spec.optimizer.lr) == ("adam", 0.02)  # decay_power 1.5 with lr 0.02: QUALITY.md
    assert (spec.steps, spec.seed, spec.device, spec.precision) == (512, 0, "auto", "auto")
    assert spec.thresholds == [] and spec.resize_to_model is True
    assert spec.objective[0].weight == 1.0


def test_technique_defaults(tiny_spec: dict[str, Any]) -> None:
    spec = parse_spec(tiny_spec)
    assert spec.relu_redirect == 16 and spec.interpolate is None and spec.regularizers.init_l2 == 0
    assert spec.param.init_image is None and spec.param.generator is None


def test_standard_transforms_are_lucids() -> None:
    t = standard_transforms()
    assert [x.type for x in t] == ["pad", "jitter", "scale", "rotate", "jitter"]
    assert (t[0].pixels, t[0].mode, t[0].value) == (12, "constant", 0.5)
    assert t[1].pixels == 8 and t[4].pixels == 4
    assert t[2].factors == pytest.approx([0.9, 0.92, 0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06, 1.08, 1.1])
    assert len(t[2].factors) == 11
    assert t[3].degrees == [float(a) for a in range(-10, 11)] + [0.0] * 5
    assert STANDARD_SCALES == t[2].factors and STANDARD_ANGLES == t[3].degrees


def test_default_transforms_are_not_shared(tiny_spec: dict) -> None:
    a = parse_spec(copy.deepcopy(tiny_spec))
    a.transforms[2].factors.append(9.0)
    a.transforms.pop()
    b = parse_spec(tiny_spec)
    assert b.transforms == standard_transforms()
    assert len(b.transforms[2].factors) == 11


def test_spec_to_dict_round_trips(tiny_spec: dict) -> None:
    spec = parse_spec(tiny_spec)
    plain = spec_to_dict(spec)
    json.dumps(plain)  # plain data only
    assert parse_spec(plain) == spec
