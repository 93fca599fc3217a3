"""The Python API: render a spec (a Spec, a dict or a YAML path) and optionally save it.

``render`` returns images and figures without writing anything; ``render_to_dir``
also writes PNGs, the grid and ``meta.json`` (last, so its presence means complete).
"""
from __future__ import annotations

import dataclasses
import platform
import sys
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .config import ModelSpec, Spec, load_spec, parse_spec, spec_to_dict
from .engine import Progress, RenderResult
from .engine import render as _render_spec
from .hooks import LayerInfo
from .models import ModelInfo


def as_spec(spec: Spec | dict | str | Path) -> Spec:
    """Accept a ``Spec``, a plain dict, or the path of a YAML file."""
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, dict):
        return parse_spec(spec)
    return load_spec(spec)


def render(spec: Spec | dict | str | Path, **kwargs: Any) -> RenderResult:
    """Render a spec and return a ``RenderResult`` (images in [0, 1], labels, values); writes no file."""
    return _render_spec(as_spec(spec), **kwargs)


def model_layers(spec: ModelSpec, size: int | None = None) -> tuple[ModelInfo, int, list[LayerInfo]]:
    """Every addressable layer of the model ``spec`` names with its output shape, from one forward pass
    at ``size`` pixels (default: the model's input size); also returns the model's info and the size."""
    import torch

    from .hooks import list_layers
    from .models import load_model

    module, info = load_model(spec)
    n = size or info.input_size
    return info, n, list_layers(module, torch.zeros(1, 3, n, n))


def versions() -> dict[str, str]:
    """Versions of featviz and the libraries that shape its results."""
    import numpy
    import PIL
    import torch
    import torchvision

    return {
        "featviz": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def result_meta(result: RenderResult) -> dict[str, Any]:
    """The JSON metadata of a render (``files`` is added when the files are written)."""
    info = result.model_info
    spec = result.spec
    return {
        "featviz": __version__,
        "name": spec.name if spec else None,
        "model": {
            "name": info.name,
            "weights": info.weights,
            "source": info.source,
            "input_size": info.input_size,
            "mean": list(info.mean),
            "std": list(info.std),
            "value_range": list(info.value_range),
        },
        "layers": result.layers,
        "objective": result.description,
        "images": [
            {"index": i, "label": label, "objective": value}
            for i, (label, value) in enumerate(zip(result.labels, result.values))
        ],
        "seed": result.seed,
        "device": result.device,
        "precision": result.precision,
        "steps": result.steps,
        "loss_curve": [round(v, 6) for v in result.curve],
        "timings": result.timings,
        "techniques": result.techniques,
        "runtime": result.runtime,
        "versions": versions(),
        "spec": spec_to_dict(spec) if spec else None,
    }


def render_to_dir(
    spec: Spec | dict | str | Path,
    out_dir: str | Path | None = None,
    *,
    progress: Progress | None = None,
    examples_progress: Progress | None = None,
    notify: Callable[[str], None] | None = None,
) -> tuple[RenderResult, dict[str, Any]]:
    """Render a spec and write its outputs; returns the result and the written files' records.

    A spec with ``dataset.images`` also gets its dataset examples, written beside the images
    into the same directory (``result.examples``: the pass's result and its pages), with the
    model loaded once for both; ``examples_progress`` and ``notify`` report on that pass.
    """
    from .models import load_model
    from .outputs import Animation, output_dir, write_render

    spec = as_spec(spec)
    with output_dir(Path(out_dir or spec.output.dir)) as out:  # made first: a failure before any file removes it
        # With a dataset the model is loaded once for both passes; else the render loads (and times) it.
        model, info = load_model(spec.model) if spec.dataset.images else (None, None)
        result = _render_spec(spec, model=model, info=info, progress=progress)
        meta = result_meta(result)
        meta["output_dir"] = str(out)
        it = spec.interpolate
        files = write_render(
            out, result.images.permute(0, 2, 3, 1).numpy(), result.labels, meta,
            grid=spec.output.grid,
            per_image=spec.output.images,
            snapshots={k: v.permute(0, 2, 3, 1).numpy() for k, v in result.snapshots.items()},
            stem_names=result.labels,
            grid_labels=spec.output.labels,
            animation=None if it is None else Animation(it.duration_ms, it.pingpong, it.webp),
            alpha=None if result.alpha is None else result.alpha.numpy(),
        )
        if spec.dataset.images:  # the dataset rule: examples beside the images, for the CLI and the API alike
            from .examples import run_examples

            here = dataclasses.replace(spec, output=dataclasses.replace(spec.output, dir=str(out)))
            result.examples = run_examples(here, model=model, info=info, progress=examples_progress, notify=notify)
        return result, files
