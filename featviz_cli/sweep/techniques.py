"""Several techniques per unit in one sweep (``sweep.techniques``): what each renders and where its files go.

A sweep without ``sweep.techniques`` renders each unit once, the swept term as given, into
``units/<layer>/``. With techniques, every unit is rendered once per technique, each into its own
directory ``units/<technique>/<layer>/`` with its own batches, sha256 and contact sheets:

- ``channel``: the swept term as a channel objective (the channel's mean over space);
- ``neuron``: the swept term as a neuron objective (one position: the term's x/y, default the centre);
- ``{diverse: K}``: K images per unit from one optimization, the term's own type on each, and a
  diversity term (``group: K``) that pushes each unit's K images apart and leaves other units' alone.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ..config import ObjectiveSpec, Spec, term_path
from ..config.spec import DiverseSpec
from ..errors import SpecError

#: Swept term types that have channels, so that a channel or neuron render of them means something.
_SPATIAL = ("channel", "neuron")
#: Swept term types with a layer of their own, where the diversity term of ``{diverse: K}`` goes by default.
_LAYERED = _SPATIAL + ("direction",)


@dataclass(frozen=True)
class Technique:
    """One technique of a sweep: its name, its directory, images per unit, and the diversity settings."""

    name: str  # channel | neuron | diverse
    dir: str  # its directory under units/ and sheets/: channel, neuron, diverse4
    images: int = 1  # images per unit
    weight: float = 0.0  # diverse: weight of the diversity term
    layer: str | None = None  # diverse: the layer of the diversity term (None: the swept layer)

    @property
    def title(self) -> str:
        """How pages name it: ``channel``, ``neuron``, ``diverse x4``."""
        return f"{self.name} \u00d7{self.images}" if self.name == "diverse" else self.name

    def units_per_batch(self, batch: int) -> int:
        """Units in one optimization batch of about ``batch`` images (at least one unit)."""
        return max(1, batch // self.images)

    def record(self) -> dict[str, Any]:
        """How ``sweep.json`` and the manifest describe it."""
        return {"name": self.name, "dir": self.dir, "title": self.title, "images": self.images,
                "weight": self.weight, "layer": self.layer}


def from_record(d: dict[str, Any]) -> Technique:
    """A technique back from its ``record``."""
    return Technique(str(d["name"]), str(d["dir"]), int(d.get("images") or 1), float(d.get("weight") or 0.0),
                     d.get("layer"))


def techniques_of(spec: Spec, term: int) -> tuple[Technique, ...]:
    """The techniques of ``sweep.techniques`` for the swept term ``term``; () without them.

    ``SpecError`` naming ``sweep.techniques[i]`` for a technique the term cannot have, or one listed twice.
    """
    raw = spec.sweep.techniques
    if raw is None:
        return ()
    kind = spec.objective[term].type
    where = term_path(len(spec.objective), term)
    result: list[Technique] = []
    for i, item in enumerate(raw):
        field = f"sweep.techniques[{i}]"
        if isinstance(item, DiverseSpec):
            if kind not in _LAYERED and item.layer is None:
                raise SpecError(f"{field}.layer", f"a {kind} sweep has no layer of its own for the diversity term; "
                                "give one, e.g. {diverse: 4, layer: <name>}.")
            t = Technique("diverse", f"diverse{item.diverse}", item.diverse, item.weight, item.layer)
        else:
            if kind not in _SPATIAL:
                raise SpecError(field, f"'{item}' renders a channel, but {where} is a {kind} term; "
                                "use {diverse: K} or drop sweep.techniques.")
            t = Technique(str(item), str(item))
        if any(t.dir == other.dir for other in result):
            raise SpecError(field, f"'{t.title}' is listed twice; list each technique once.")
        result.append(t)
    return tuple(result)


def apply_technique(spec: Spec, term: int, technique: Technique) -> None:
    """Turn a batch's render spec (the swept term with the batch's units) into ``technique``'s, in place."""
    t = spec.objective[term]
    if technique.name in _SPATIAL:
        t.type = technique.name
        if technique.name == "channel":
            t.x = t.y = None
        return
    units = list(t.units or [])
    t.units = [u for u in units for _ in range(technique.images)]
    layer = technique.layer or t.layer
    spec.objective.append(ObjectiveSpec(type="diversity", layer=layer, weight=technique.weight,
                                        group=technique.images))


def technique_spec(spec: Spec, term: int, technique: Technique) -> Spec:
    """A copy of ``spec`` turned into ``technique``'s render spec (see ``apply_technique``)."""
    out = copy.deepcopy(spec)
    apply_technique(out, term, technique)
    return out
