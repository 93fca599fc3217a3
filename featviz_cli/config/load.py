"""Loading a spec: YAML files and text, ``--set`` overrides and CLI keywords, then validation."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .coerce import build, type_name
from .rules import check_rules, term_path
from .spec import ObjectiveSpec, Spec, spec_to_dict


def _loader() -> Any:
    """A SafeLoader that also reads YAML 1.2 floats such as ``1e-3`` (YAML 1.1 reads them as strings)
    and keeps ``16:32`` a string (YAML 1.1 reads it as a base-60 integer)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    # YAML 1.1 reads 16:32 as the base-60 integer 992; YAML 1.2 (and a unit range) means the text.
    sexagesimal = ("tag:yaml.org,2002:str", re.compile(r"^[0-9]+(?::[0-9]+)+$"))
    for ch in "0123456789":
        Loader.yaml_implicit_resolvers.setdefault(ch, []).insert(0, sexagesimal)
    return Loader


def parse_yaml(text: str) -> Any:
    """Parse YAML text safely: no object tags, YAML 1.2 floats."""
    import yaml

    return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file safely (no object tags); errors name the file and line."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("", f"{p}: no such file; check the path.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError("", f"{p}: cannot read ({e.__class__.__name__}: {e}).") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        if isinstance(e, yaml.constructor.ConstructorError):
            raise SpecError("", f"{p}:{where}: YAML tags are not allowed ({problem}); use plain values.") from None
        raise SpecError("", f"{p}:{where}: YAML syntax error: {problem}. Fix the YAML syntax there.") from None


def load_spec(path: str | Path, overrides: list[str] | None = None, **cli: Any) -> Spec:
    """Load, override (``key.path=value`` strings and CLI keywords) and validate a spec file."""
    data = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError("", f"{path}: the spec must be a YAML mapping (key: value), got {type_name(data)}.")
    for item in overrides or []:
        apply_override(data, item)
    for key, value in cli.items():
        if value is not None:
            set_path(data, key, value)
    return parse_spec(data)


def apply_override(data: dict, item: str) -> None:
    """Apply one ``--set a.b.c=value`` override to a nested dict; the value is parsed as YAML."""
    import yaml

    if "=" not in item:
        raise SpecError("--set", f"{item!r} is not key.path=value (e.g. --set param.size=64).")
    key, raw = item.split("=", 1)
    try:
        value = parse_yaml(raw)
    except yaml.YAMLError:
        raise SpecError(key, f"cannot parse --set value {raw!r} as YAML.") from None
    set_path(data, key, value)


def set_path(data: dict, key: str, value: Any) -> None:
    """Set ``value`` at the dotted ``key`` (list items by index: ``objective.0.unit``).

    A missing top-level key starts from its default (so ``transforms.0.pixels`` edits the
    standard list), and a single mapping counts as a list of one (``objective.0.unit``).
    """
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise SpecError("--set", f"{key!r} is an empty key.")
    defaults = spec_to_dict(Spec())
    top = parts[0]
    if isinstance(defaults.get(top), list) and data.get(top, "standard") == "standard" and len(parts) > 1:
        data[top] = defaults[top]
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, dict) and part.isdigit() and part not in node and i > 0:
            if part != "0":
                raise SpecError(where, f"index {part} is out of range: {'.'.join(parts[:i])} has one item.")
            if last:
                raise SpecError(where, "cannot replace the single item by index; set its keys instead.")
            continue  # a single mapping is item 0 of a list of one
        if isinstance(node, list):
            if not part.isdigit():
                if len(node) != 1:
                    raise SpecError(where, f"{'.'.join(parts[:i])} is a list; give an index (e.g. {'.'.join(parts[:i])}.0.{part}).")
                node = node[0]
            elif int(part) >= len(node):
                raise SpecError(where, f"index {part} is out of range: {'.'.join(parts[:i])} has {len(node)} item(s).")
            else:
                if last:
                    node[int(part)] = value
                    return
                node = node[int(part)]
                continue
        if not isinstance(node, dict):
            raise SpecError(where, "cannot set a key inside a non-mapping value.")
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


def parse_spec(data: dict) -> Spec:
    """Validate a plain dict (from YAML) into a ``Spec``; raise ``SpecError`` naming the field."""
    data = dict(data)
    if "objective" not in data:
        raise SpecError("objective", "missing; add e.g. 'objective: {type: channel, layer: <name>, unit: 0}'.")
    terms = data.pop("objective")
    if isinstance(terms, dict):
        terms = [terms]
    if not isinstance(terms, list):
        raise SpecError("objective", f"expected a list of terms (or one mapping), got {type_name(terms)}.")
    if not terms:
        raise SpecError("objective", "needs at least 1 item (an objective term).")
    tr = data.get("transforms", "standard")
    if tr == "standard":
        data.pop("transforms", None)
    elif tr in ("none", None, False):
        data["transforms"] = []
    elif isinstance(tr, str):
        raise SpecError("transforms", f"{tr!r} is not 'standard', 'none' or a list of transforms.")
    spec = build(Spec, data, "")
    spec.objective = [build(ObjectiveSpec, t, term_path(len(terms), i)) for i, t in enumerate(terms)]
    check_rules(spec)
    return spec
