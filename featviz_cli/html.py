"""HTML pages from Jinja2 templates: the sweep gallery and the dataset-example pages.

One environment over ``featviz_cli/templates`` (shipped as package data): autoescaping on,
an undefined name is an error, and every page extends ``base.html``, which inlines the one
stylesheet ``style.css`` so that a page opened straight from the filesystem needs no other file.
"""
from __future__ import annotations

import functools
from typing import Any

import jinja2
from markupsafe import Markup

STYLESHEET = "style.css"


def number(value: Any) -> str:
    """A value as a page shows it: floats to 4 significant digits, None as ``-``."""
    return f"{value:.4g}" if isinstance(value, float) else "-" if value is None else str(value)


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates' environment (built once): autoescape, StrictUndefined, the ``number`` and ``fmt`` filters."""
    loader = jinja2.PackageLoader("featviz_cli", "templates")
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["number"] = number
    env.filters["fmt"] = format  # {{ x|fmt(".3g") }}: Python's format specification
    # Read as text, not rendered as a template: the stylesheet is CSS, and CSS braces are not Jinja's.
    env.globals["stylesheet"] = Markup(loader.get_source(env, STYLESHEET)[0])
    return env


def render(template: str, **context: Any) -> str:
    """The page ``template`` (a file name under ``featviz_cli/templates``) rendered with ``context``."""
    return environment().get_template(template).render(**context)
