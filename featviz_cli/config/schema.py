"""The JSON Schema (draft 2020-12) of the spec, generated from the dataclasses."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from .coerce import is_required
from .spec import Spec


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the spec, generated from the dataclasses."""
    schema = _schema_of(Spec, {})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "featviz experiment spec"
    schema["required"] = ["objective"]
    obj = schema["properties"]["objective"]
    schema["properties"]["objective"] = {"description": obj.get("description", ""), "oneOf": [obj["items"], obj]}
    tr = schema["properties"]["transforms"]
    schema["properties"]["transforms"] = {
        "description": tr.get("description", ""),
        "oneOf": [{"enum": ["standard", "none", None, False]}, tr],
    }
    return schema


def _schema_of(tp: Any, meta: Any) -> dict[str, Any]:
    """The schema of type ``tp`` with the field's help and limits in ``meta``."""
    origin = get_origin(tp)
    out: dict[str, Any]
    if origin in (Union, types.UnionType):
        limits = {k: v for k, v in meta.items() if k in ("ge", "gt", "le")}  # e.g. int | None with ge=1
        out = {"anyOf": [_schema_of(a, limits) for a in get_args(tp)]}
    elif origin is Literal:
        out = {"enum": list(get_args(tp))}
    elif origin is list:
        out = {"type": "array", "items": _schema_of(get_args(tp)[0], {})}
        if "min_items" in meta:
            out["minItems"] = meta["min_items"]
    elif origin is dict:
        out = {"type": "object"}
    elif dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        props = {f.name: _schema_of(hints[f.name], f.metadata) for f in dataclasses.fields(tp)}
        out = {"type": "object", "properties": props, "additionalProperties": False}
        if tp.__doc__:
            out["description"] = tp.__doc__.strip().splitlines()[0]
        req = [f.name for f in dataclasses.fields(tp) if is_required(f)]
        if req:
            out["required"] = req
    elif tp is type(None):
        out = {"type": "null"}
    else:
        out = {"type": {int: "integer", float: "number", str: "string", bool: "boolean"}[tp]}
        for k, j in (("ge", "minimum"), ("gt", "exclusiveMinimum"), ("le", "maximum")):
            if k in meta:
                out[j] = meta[k]
    if meta.get("help"):
        out["description"] = meta["help"]
    return out
