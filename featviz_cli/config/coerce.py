"""The generic typed builder: plain data (from YAML) into the spec dataclasses.

Unknown keys, wrong types and values outside a field's limits raise ``SpecError``
naming the field; the messages read as YAML (``a string``, ``true or false``).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from ..errors import SpecError


def type_name(v: Any) -> str:
    """How an error names the YAML type of ``v``: ``a mapping``, ``a string``, ``null``, ..."""
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def is_required(f: dataclasses.Field) -> bool:
    """Whether dataclass field ``f`` has no default, so the YAML must give it."""
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def build(cls: type, data: Any, path: str) -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ``SpecError``."""
    if not isinstance(data, dict):
        raise SpecError(path or "spec", f"must be a mapping (key: value), got {type_name(data)}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key_s = str(key)
        sub = f"{path}.{key_s}" if path else key_s
        if key_s not in fields:
            close = difflib.get_close_matches(key_s, list(fields), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else f" Known keys: {', '.join(fields)}."
            raise SpecError(sub, f"unknown key.{hint}")
        f = fields[key_s]
        kwargs[key_s] = _coerce(hints[key_s], value, sub, f.metadata)
    for name, f in fields.items():
        if name not in kwargs and is_required(f):
            raise SpecError(f"{path}.{name}" if path else name, "missing; this key is required.")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, path: str, meta: Any = None) -> Any:
    """Check ``value`` against type ``tp`` (and limits in ``meta``); return the typed value."""
    meta = meta or {}
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, path, meta)
            except SpecError as e:
                errors.append(e)
        expected = " or ".join(_describe(a) for a in args)
        if len(errors) == 1:
            raise errors[0]
        # In a union of words and mappings (e.g. sweep.techniques' items), the alternative of the value's
        # own kind says more; other unions (true/false or 'auto') keep the one line naming every choice.
        alternatives = [a for a in args if a is not type(None)]
        kind = [e for a, e in zip(alternatives, errors)
                if (isinstance(value, str) and get_origin(a) is Literal)
                or (isinstance(value, dict) and dataclasses.is_dataclass(a))]
        if len(kind) == 1 and any(dataclasses.is_dataclass(a) for a in alternatives):
            raise kind[0]
        raise SpecError(path, f"expected {expected}, got {type_name(value)} {value!r}.")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise SpecError(path, f"{value!r} is not one of {', '.join(map(str, choices))}.{hint}")
        return value
    if origin is list:
        (item_tp,) = get_args(tp)
        if not isinstance(value, list):
            raise SpecError(path, f"expected a list, got {type_name(value)}.")
        if "min_items" in meta and len(value) < meta["min_items"]:
            raise SpecError(path, f"needs at least {meta['min_items']} item(s).")
        return [_coerce(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(path, f"expected a mapping, got {type_name(value)}.")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(path, f"expected true or false, got {type_name(value)} {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise SpecError(path, f"expected an integer, got {type_name(value)} {value!r}.")
        _limits(value, path, meta)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(path, f"expected a number, got {type_name(value)} {value!r}.")
        value = float(value)
        if not math.isfinite(value):
            raise SpecError(path, f"must be a finite number, got {value}.")
        _limits(value, path, meta)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(path, f"expected a string, got {type_name(value)} {value!r}.")
        return value
    raise TypeError(f"unsupported spec type {tp!r} at {path}")  # pragma: no cover - programming error


def _limits(value: float, path: str, meta: Any) -> None:
    """Check a number against the field's ``ge``, ``gt`` and ``le`` limits."""
    if "ge" in meta and value < meta["ge"]:
        raise SpecError(path, f"must be >= {meta['ge']}, got {value}.")
    if "gt" in meta and value <= meta["gt"]:
        raise SpecError(path, f"must be > {meta['gt']}, got {value}.")
    if "le" in meta and value > meta["le"]:
        raise SpecError(path, f"must be <= {meta['le']}, got {value}.")


def _describe(tp: Any) -> str:
    """How an error names what type ``tp`` expects (``an integer``, ``'fft' or 'pixel'``)."""
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(c) for c in get_args(tp))
    if origin is list:
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false", type(None): "null"}.get(tp, str(tp))
