"""A spec in, files out: the dataset examples a spec's ``dataset:`` section describes.

What ``featviz examples`` (and ``featviz render`` with ``dataset.images``) calls. A rerun
repairs: a checkpoint that is damaged is deleted and the pass runs again (the same images
give the same result), and only the output files that are missing or damaged are written.
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
from ..outputs import output_dir, remove_temps
from ..runtime import pick_device, resolve_precision
from .checkpoint import DamagedCheckpoint, checkpoint_path, pass_fingerprint
from .digest import digest_path, record_digest
from .layout import EXAMPLES_DIR, repair_lines
from .pass_ import Basis, ExamplesResult, Notify, collect
from .write import update_examples

SHOWN_REPAIRS = 3  # damaged files of a kind named in its line (all are counted)


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

    Resumes from the pass's checkpoint unless ``restart``; a damaged checkpoint is deleted and the
    pass runs again. ``precision: auto`` means fp32 here (a ranking needs the precision; the pass
    has no backward to speed up); bf16/fp16 when asked. Where the examples were written before
    (no image newly ranked), every file written now repaired one that was missing or damaged:
    ``result.repaired`` lists them. Returns the result and ``{layer: examples.json path}``.
    """
    ds = spec.dataset
    if not ds.images:
        raise SpecError("dataset.images", "no image folder; give --images DIR or dataset.images in the spec.")
    with output_dir(Path(spec.output.dir)) as out:  # made first: a failure before any file removes it
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
        missing = not restart and not ckpt.exists()
        repaired: dict[str, str] = {}  # the checkpoint's files

        def run_pass() -> ExamplesResult:
            return collect(
                model, info, layers, root, k=ds.k, bottom=ds.bottom, batch_size=ds.batch_size, workers=ds.workers,
                device=device, autocast_dtype=dtype, rf_mass=ds.rf_mass, checkpoint=ckpt,
                checkpoint_every=ds.checkpoint_every, identity=identity, progress=progress, notify=notify,
                bases=bases,
            )

        try:
            result = run_pass()
        except DamagedCheckpoint as err:
            if notify is not None:
                notify(f"{err.path} {err.problem}: deleting it and running the pass again")
            err.path.unlink(missing_ok=True)
            repaired[f"{EXAMPLES_DIR}/{ckpt.name}"] = err.problem
            result = run_pass()
        remove_temps(ckpt.parent, [ckpt.stem])  # left by a kill while the checkpoint or its digest was written
        rerun = bool(repaired) or result.resumed_from == result.files  # the examples were written before
        if record_digest(ckpt):  # none (an earlier featviz), or an unreadable one, beside a readable checkpoint
            repaired[f"{EXAMPLES_DIR}/{digest_path(ckpt).name}"] = "is missing or unreadable"
        t0 = time.perf_counter()
        report = update_examples(result, out, workers=ds.workers, model_name=spec.model.name)
        result.timings["write_s"] = round(time.perf_counter() - t0, 3)
        if missing and report.vouched:  # a finished pass whose checkpoint was deleted: it ran again
            repaired[f"{EXAMPLES_DIR}/{ckpt.name}"] = "is missing"
            rerun = True
        result.repaired = {**repaired, **(report.written if rerun else {})}
        if notify is not None:
            for line in repair_lines(result.repaired, SHOWN_REPAIRS):
                notify(line)
        return result, report.paths
