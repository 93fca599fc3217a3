"""The experiment spec: typed dataclasses, YAML loading, validation and JSON Schema.

By job: ``spec`` (the dataclasses, every default and help text), ``coerce`` (plain data
into typed dataclasses), ``rules`` (cross-field rules), ``load`` (YAML, ``--set``,
``parse_spec``) and ``schema`` (the JSON Schema). Validation happens before any model
is loaded and every error names the YAML field (``objective[1].unit``) and what would
fix it. Nothing here imports torch: ``featviz validate`` stays fast.
"""
from __future__ import annotations

from .load import apply_override, load_spec, parse_spec
from .rules import batch_size, check_render, parse_unit_range, term_path
from .schema import json_schema
from .spec import (
    LATER_FIELDS,
    SWEEP_BATCH_DEFAULTS,
    GeneratorSpec,
    ModelSpec,
    ObjectiveSpec,
    ParamSpec,
    RegularizerSpec,
    Spec,
    TransformSpec,
    spec_to_dict,
    standard_transforms,
)

__all__ = [
    "LATER_FIELDS",
    "SWEEP_BATCH_DEFAULTS",
    "GeneratorSpec",
    "ModelSpec",
    "ObjectiveSpec",
    "ParamSpec",
    "RegularizerSpec",
    "Spec",
    "TransformSpec",
    "apply_override",
    "batch_size",
    "json_schema",
    "load_spec",
    "parse_spec",
    "parse_unit_range",
    "spec_to_dict",
    "standard_transforms",
    "check_render",
    "term_path",
]
