"""ModelInfo as data, and ``info_fields``: a user's featviz_info dict checked into ModelInfo fields."""
from __future__ import annotations

from typing import Any

import pytest

from featviz_cli.errors import ModelError
from featviz_cli.models.info import INFO_FIELDS, ModelInfo, info_fields


def test_defaults_are_imagenet_preprocessing() -> None:
    info = ModelInfo(name="x")
    assert (info.input_size, info.mean, info.std, info.value_range) == (
        224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (0.0, 1.0))
    assert set(INFO_FIELDS) < {f for f in ModelInfo.__dataclass_fields__}


def test_info_fields_converts_to_the_field_types() -> None:
    fields = info_fields({"input_size": 96, "mean": [1, 2, 3], "std": (4.0, 5, 6), "value_range": [0, 255],
                          "class_names": ["a", "b"]}, "w")
    assert fields == {"input_size": 96, "mean": (1.0, 2.0, 3.0), "std": (4.0, 5.0, 6.0),
                      "value_range": (0.0, 255.0), "class_names": ("a", "b")}
    assert info_fields({"class_names": None}, "w") == {"class_names": None}
    assert ModelInfo(name="x", **fields).value_range == (0.0, 255.0)


@pytest.mark.parametrize(
    "data, expected",
    [
        ([1], "w: featviz_info must be a dict with keys input_size, mean, std, value_range, class_names."),
        ({"colour": 1}, "w: featviz_info has unknown key(s) colour; allowed: input_size, mean, std, value_range, "
                        "class_names."),
        ({"input_size": True}, "w: featviz_info['input_size'] must be a positive integer (pixels), got True."),
        ({"input_size": 0}, "w: featviz_info['input_size'] must be a positive integer (pixels), got 0."),
        ({"mean": [0.5, 0.5]}, "w: featviz_info['mean'] must be 3 numbers, got [0.5, 0.5]."),
        ({"std": [1, True, 1]}, "w: featviz_info['std'] must be 3 numbers, got [1, True, 1]."),
        ({"value_range": [1, 0]}, "w: featviz_info['value_range'] must be [low, high] with low < high, got [1, 0]."),
        ({"class_names": "abc"}, "w: featviz_info['class_names'] must be a list of strings, got str."),
    ],
)
def test_info_fields_errors(data: Any, expected: str) -> None:
    with pytest.raises(ModelError) as e:
        info_fields(data, "w")
    assert str(e.value) == expected
