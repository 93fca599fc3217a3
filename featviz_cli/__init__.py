"""featviz: batch feature visualization by optimization for PyTorch vision models.

Public API (imported lazily so that ``featviz validate`` does not load torch)::

    import featviz_cli
    result = featviz_cli.render("configs/quickstart.yaml")   # images + figures, no files
    result, files = featviz_cli.render_to_dir(spec, "out/")  # also writes PNGs and meta.json
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "render", "render_to_dir", "load_spec", "parse_spec", "Spec", "RenderResult"]


def __getattr__(name: str) -> Any:
    if name in ("render", "render_to_dir"):
        from . import api

        return getattr(api, name)
    if name in ("load_spec", "parse_spec", "Spec"):
        from . import config

        return getattr(config, name)
    if name == "RenderResult":
        from .engine import RenderResult

        return RenderResult
    raise AttributeError(name)
