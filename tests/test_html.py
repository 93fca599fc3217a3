"""Pages from templates (featviz_cli/html.py): autoescaping, undefined names are errors, one stylesheet,
and the templates ship inside the wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jinja2
import pytest

import featviz_cli
from featviz_cli.html import environment, number, render

from conftest import ROOT

TEMPLATES = Path(featviz_cli.__file__).parent / "templates"


def test_names_are_escaped_and_undefined_names_are_errors() -> None:
    env = environment()
    assert env.from_string("<p title='{{ x }}'>{{ x }}</p>").render(x="<a href=\"x\">'&") == (
        "<p title='&lt;a href=&#34;x&#34;&gt;&#39;&amp;'>&lt;a href=&#34;x&#34;&gt;&#39;&amp;</p>")
    with pytest.raises(jinja2.UndefinedError, match="layers"):
        render("examples_index.html", title="t", heading="h")
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ row.missing }}").render(row={})


def test_number_formats_floats_to_four_digits_and_none_as_a_dash() -> None:
    values = (0.123456, 12345.6, 3, None, "x", -1.5)
    assert [number(v) for v in values] == ["0.1235", "1.235e+04", "3", "-", "x", "-1.5"]
    assert environment().from_string("{{ v|number }} {{ v|fmt('.0%') }}").render(v=0.25) == "0.25 25%"


def test_one_stylesheet_inlined_into_every_page() -> None:
    assert sorted(p.name for p in TEMPLATES.glob("*.css")) == ["style.css"]
    css = (TEMPLATES / "style.css").read_text(encoding="utf-8")
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert ("<style" in text) == (template.name == "base.html"), template.name
    for module in Path(featviz_cli.__file__).parent.rglob("*.py"):  # no CSS or page skeleton left in the code
        text = module.read_text(encoding="utf-8")
        assert "<style" not in text and "<html" not in text.lower(), module
    page = render("examples_index.html", title="t", heading="h", layers=[])
    assert page.count(css) == 1 and page.startswith("<!DOCTYPE html>\n") and page.endswith("</html>\n")


def test_the_wheel_ships_the_templates_and_renders_pages_from_them(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: the build writes into its source tree
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "featviz_cli", src / "featviz_cli", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-q", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("featviz-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n for n in zf.namelist() if n.startswith("featviz_cli/templates/")}
        expected = {f"featviz_cli/templates/{p.name}" for p in TEMPLATES.iterdir() if p.is_file()}
        assert "featviz_cli/templates/style.css" in expected and "featviz_cli/templates/base.html" in expected
        assert shipped == expected
        zf.extractall(tmp_path / "installed")
    code = ("import pathlib, featviz_cli, featviz_cli.html as h; print(featviz_cli.__file__); "
            "css = (pathlib.Path(featviz_cli.__file__).parent / 'templates' / 'style.css').read_text(); "
            "print(h.render('examples_index.html', title='t', heading='h', layers=[]).count(css))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "installed")}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True)
    where, count = run.stdout.split()
    assert Path(where).is_relative_to(tmp_path / "installed") and count == "1"
