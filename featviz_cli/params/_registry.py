"""The registry of image parameterizations: a name, how to build one and how to describe it.

Each parameterization module registers itself with ``@register_param(name, describe=...)``;
this module imports nothing, so a new parameterization is one new file (plus its import in
``params/__init__.py``). Builders take plain data (the ``param:`` section as a mapping), never
the spec classes: the recipe turns the spec into those options.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

#: ``build(options, batch, generator, device) -> ImageParam``; ``describe(options) -> str``.
Builder = Callable[..., Any]
Describer = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class ParamKind:
    """A registered parameterization. ``pixel_like``: it can start from a photo, be blurred and
    share low-resolution parts between frames (its raw image is a tensor that ``load_raw_`` sets)."""

    name: str
    build: Builder
    describe: Describer
    pixel_like: bool = False


_KINDS: dict[str, ParamKind] = {}


def register_param(name: str, *, describe: Describer, pixel_like: bool = False) -> Callable[[Builder], Builder]:
    """Register the decorated builder under ``name``."""

    def deco(build: Builder) -> Builder:
        _KINDS[name] = ParamKind(name, build, describe, pixel_like)
        return build

    return deco


def param_kind(name: str) -> ParamKind:
    """The registered parameterization ``name``; ``KeyError`` naming the known ones otherwise."""
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"unknown parameterization {name!r}; known: {', '.join(sorted(_KINDS))}") from None


def param_names() -> list[str]:
    """The names of every registered parameterization."""
    return sorted(_KINDS)
