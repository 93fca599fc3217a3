"""The config package: the names it exports, and no torch on the way to 'featviz validate'."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import featviz_cli.config as config

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("spec", "coerce", "rules", "load", "schema")
#: What code outside the package imported from ``featviz_cli.config`` when it became a package,
#: and the module that now holds each name.
HOMES = {
    "LATER_FIELDS": "spec", "SWEEP_BATCH_DEFAULTS": "spec", "GeneratorSpec": "spec", "ModelSpec": "spec", "ObjectiveSpec": "spec",
    "ParamSpec": "spec", "Spec": "spec", "TransformSpec": "spec", "spec_to_dict": "spec",
    "standard_transforms": "spec", "RegularizerSpec": "spec", "apply_override": "load", "batch_size": "rules", "parse_unit_range": "rules",
    "check_render": "rules", "term_path": "rules", "load_spec": "load", "parse_spec": "load",
    "json_schema": "schema",
}


def test_exports_exactly_what_is_used_outside() -> None:
    assert sorted(config.__all__) == sorted(HOMES)
    star: dict[str, object] = {}
    exec("from featviz_cli.config import *", star)  # noqa: S102 - a fixed import line
    assert set(star) - {"__builtins__"} == set(HOMES)


def test_each_export_is_the_object_of_its_module() -> None:
    for name, home in HOMES.items():
        module = importlib.import_module(f"featviz_cli.config.{home}")
        obj = getattr(config, name)
        assert obj is getattr(module, name), name
        assert getattr(obj, "__module__", module.__name__) == module.__name__, name


def test_validate_and_the_package_do_not_import_torch() -> None:
    configs = sorted(str(p) for p in (ROOT / "configs").glob("*.yaml"))
    code = (
        "import sys, importlib\n"
        f"configs = {configs!r}\n"
        "import featviz_cli.config as config\n"
        f"for m in {MODULES!r}: importlib.import_module('featviz_cli.config.' + m)\n"
        "for path in configs: config.load_spec(path)\n"
        "config.json_schema()\n"
        "if 'torch' in sys.modules: sys.exit(3)\n"
        "from featviz_cli.cli import app\n"
        "for path in configs:\n"
        "    try:\n"
        "        app(['validate', path], prog_name='featviz')\n"
        "    except SystemExit as e:\n"
        "        if e.code: sys.exit(5)\n"
        "sys.exit(4 if 'torch' in sys.modules else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 3, "the featviz_cli.config package imports torch"
    assert result.returncode != 4, "'featviz validate' imports torch"
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("OK: ") == len(configs) > 0
