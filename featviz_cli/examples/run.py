"""A spec in, files out: the dataset examples a spec's ``dataset:`` section describes.

What ``featviz examples`` (and ``featviz render`` with ``dataset.images``) calls.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..config import Spec, term_path
from ..engine import Progress
from ..errors import SpecError
from ..hooks import OUTPUT
from ..models import ModelInfo, load_model
from ..outputs import prepare_output_dir
from ..runtime import pick_device, resolve_precision
from .checkpoint import checkpoint_path, pass_fingerprint
from .pass_ import Basis, ExamplesResult, Notify, collect
from .write import write_examples


def spec_layers(spec: Spec) -> list[str]:
    """The layers a spec's examples are for: ``dataset.layers``, else every objective term's layer."""
    if spec.dataset.layers:
        return list(spec.dataset.layers)
    layers: list[str] = []
    for term in spec.objective:  # a sweep's term may name a list of layers
        layers += term.layer if isinstance(term.layer, list) else [term.layer or OUTPUT]
    return list(dict.fromkeys(layers))


def spec_bases(spec: Spec) -> dict[str, Basis]:
    """The dictionaries of a spec's direction terms with rows (``vector_file`` and ``units``), by layer:
    the examples of such a layer rank every row of the dictionary."""
    from ..directions.matrix import load_dictionary
    from ..outputs import sha256_file

    bases: dict[str, Basis] = {}
    for i, term in enumerate(spec.objective):
        if term.type != "direction" or term.vector_file is None or (term.unit is None and term.units is None):
            continue
        field = f"{term_path(len(spec.objective), i)}.vector_file"
        layer = term.layer if isinstance(term.layer, str) else OUTPUT
        if layer in bases:
            raise SpecError(field, f"a second dictionary for layer {layer!r}; examples rank one dictionary per layer.")
        m = load_dictionary(term.vector_file, key=term.vector_key, field=field)
        bases[layer] = Basis(m, {"file": term.vector_file, "key": term.vector_key, "sha256": sha256_file(term.vector_file),
                                 "rows": int(m.shape[0])}, field)
    return bases


def run_examples(
    spec: Spec,
    *,
    restart: bool = False,
    model: nn.Module | None = None,
    info: ModelInfo | None = None,
    progress: Progress | None = None,
    notify: Notify | None = None,
) -> tuple[ExamplesResult, dict[str, Path]]:
    """Collect and write the dataset examples a spec describes (``dataset:``) into ``output.dir``.

    Resumes from the pass's checkpoint unless ``restart``. ``precision: auto`` means fp32 here
    (a ranking needs the precision; the pass has no backward to speed up); bf16/fp16 when asked.
    Returns the result and ``{layer: examples.json path}``.
    """
    ds = spec.dataset
    if not ds.images:
        raise SpecError("dataset.images", "no image folder; give --images DIR or dataset.images in the spec.")
    out = prepare_output_dir(Path(spec.output.dir))  # fail before the long pass
    device = pick_device(spec.device)
    dtype = None if spec.precision == "auto" else resolve_precision(spec.precision, device)
    if model is None or info is None:
        model, info = load_model(spec.model)
    layers = spec_layers(spec)
    bases = spec_bases(spec)
    identity: dict[str, Any] = dataclasses.asdict(spec.model)
    if bases:  # the ranked units are the dictionary's rows: a checkpoint is for this dictionary only
        identity["bases"] = {layer: b.about["sha256"] for layer, b in bases.items()}
    root = Path(ds.images)
    fp = pass_fingerprint(info, identity, layers, ds.k, ds.bottom, root, ds.rf_mass)
    ckpt = checkpoint_path(out, fp)
    if restart:
        ckpt.unlink(missing_ok=True)
    result = collect(
        model, info, layers, root, k=ds.k, bottom=ds.bottom, batch_size=ds.batch_size, workers=ds.workers,
        device=device, autocast_dtype=dtype, rf_mass=ds.rf_mass, checkpoint=ckpt,
        checkpoint_every=ds.checkpoint_every, identity=identity, progress=progress, notify=notify, bases=bases,
    )
    t0 = time.perf_counter()
    paths = write_examples(result, out, workers=ds.workers, model_name=spec.model.name)
    result.timings["write_s"] = round(time.perf_counter() - t0, 3)
    return result, paths
