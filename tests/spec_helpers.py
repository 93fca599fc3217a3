"""Helpers shared by the spec tests: a valid tiny spec changed one way, and the error it must raise."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest

from featviz_cli.config.load import parse_spec
from featviz_cli.errors import SpecError

Mutation = Callable[[dict[str, Any]], None]
#: (id, change to the valid tiny spec, field named by the error, text of the fix)
BadInput = tuple[str, Mutation, str, str]


def spec_error(data: dict[str, Any]) -> SpecError:
    """The ``SpecError`` that ``parse_spec(data)`` raises (fails the test if it raises none)."""
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return info.value


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    """Write ``text`` to ``tmp_path / name`` and return the path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def set_top(**values: Any) -> Mutation:
    """Set top-level keys."""
    return lambda d: d.update(values)


def set_in(section: str, **values: Any) -> Mutation:
    """Set keys inside a top-level section (created when missing)."""
    return lambda d: d.setdefault(section, {}).update(values)


def objective(**values: Any) -> Mutation:
    """Replace the objective with one term."""
    return lambda d: d.update(objective=values)


def without(*keys: str) -> Mutation:
    """Remove keys from the (single) objective term."""
    return lambda d: [d["objective"].pop(k) for k in keys]


def bad_input_params(cases: list[BadInput]) -> list[Any]:
    """``cases`` as pytest parameters ``(mutate, field, fix)``, each with its id."""
    return [pytest.param(mutate, field, fix, id=name) for name, mutate, field, fix in cases]


def assert_names_field_and_fix(tiny_spec: dict[str, Any], mutate: Mutation, field: str, fix: str) -> None:
    """The tiny spec changed by ``mutate`` fails on ``field``, with ``fix`` in the message and exit code 2."""
    data = copy.deepcopy(tiny_spec)
    mutate(data)
    err = spec_error(data)
    assert err.field == field
    assert str(err).startswith(f"{field}: ")
    assert fix in str(err)
    assert err.exit_code == 2
