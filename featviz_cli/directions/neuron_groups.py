"""``featviz factors``: sample a layer over a folder, factorize, write the matrix, render it, show the maps.

Layout of OUT::

    OUT/factors.npy              the N x C matrix (a dictionary for sweeps: vector_file)
    OUT/factors.json             method, layer, sample size, figures of the fit
    OUT/sample-<hash>.pt         the sample's checkpoint (a killed pass resumes)
    OUT/maps/fXX_iYY.png         factor XX's spatial map over image YY
    OUT/renders/                 the dictionary sweep of factors.npy (its own gallery)
    OUT/index.html               each factor's render beside its maps (written last)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import Spec
from ..errors import SpecError
from ..examples.dataset import load_for_network
from ..html import render
from ..images import iter_images
from ..models import load_model
from ..outputs import atomic_write_json, atomic_write_text, ensure_dir, output_dir, write_png
from .caricature import batch_activations
from .factors import METHODS, fit_factors
from .layout import kept
from .matrix import save_dictionary
from .render import RENDERS_DIR, heat_overlay, render_dictionary, render_path
from .sample import check_folder, probe_layer, sample_activations

MAP_SIZE = 96


def spec_layer(spec: Spec, field: str = "objective.layer") -> str:
    """The one layer a direction pass works on: the first objective term's."""
    layer = spec.objective[0].layer
    if not isinstance(layer, str):
        raise SpecError(field, "name one layer in the spec's first objective term (the layer to work on).")
    return layer


def checkpoint_for(out: Path, what: str, fingerprint: dict[str, Any]) -> Path:
    """``OUT/<what>-<hash>.pt``: the sample checkpoint of one pass configuration."""
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return out / f"{what}-{key}.pt"


def run_factors(spec: Spec, images: str | Path, out: str | Path, *, n: int = 16, method: str = "nmf",
                samples: int = 20000, crops: int = 0, maps: int = 4, render_steps: bool = True,
                cossim_pow: float = 1.0, progress: Any = None, notify: Callable[[str], None] | None = None,
                stop: Any = None) -> Path:
    """Factorize ``spec``'s layer over ``images`` into ``n`` factors; write OUT as the module says; return the page.

    Every input is checked before ``out`` is created: bad input writes nothing.
    """
    layer = spec_layer(spec)
    if method not in METHODS:
        raise SpecError("--method", f"{method!r} is not one of {', '.join(METHODS)}.")
    if n < 1:
        raise SpecError("--n", f"must be >= 1, got {n}.")
    model, info = load_model(spec.model)
    probe = probe_layer(model, info, layer)
    width, h, w = probe.shape[1:]
    if n > width:
        raise SpecError("--n", f"{n} factors for layer {layer!r} with {width} channels; ask for at most {width}.")
    if method == "nmf" and float(probe.min()) < 0:
        raise SpecError("--method", f"NMF needs non-negative activations, but layer {layer!r} goes down to "
                        f"{float(probe.min()):.3g} (on a noise image); choose a layer after a ReLU, or --method pca "
                        "or ica.")
    total = check_folder(images)
    positions = min(samples, total * (1 + crops) * h * w)
    if n > positions:
        raise SpecError("--n", f"{n} factors from at most {positions} sampled positions ({total} image(s), {crops} "
                        f"crop(s) each, {h} x {w} positions, --samples {samples}); sample more (--samples, --crops) "
                        "or ask for fewer factors.")
    with output_dir(out) as path:
        return _factors(spec, layer, model, info, Path(images), path, n=n, method=method, samples=samples,
                        crops=crops, maps=maps, render_steps=render_steps, cossim_pow=cossim_pow, progress=progress,
                        notify=notify, stop=stop)


def _factors(spec: Spec, layer: str, model: Any, info: Any, images: Path, out: Path, *, n: int, method: str,
             samples: int, crops: int, maps: int, render_steps: bool, cossim_pow: float, progress: Any,
             notify: Callable[[str], None] | None, stop: Any) -> Path:
    """The passes of ``featviz factors`` into the prepared ``out``."""
    from ..sweep.gallery import unit_page_rel

    identity = dataclasses.asdict(spec.model)
    ckpt = checkpoint_for(out, "sample", {"model": identity, "layer": layer, "samples": samples, "crops": crops,
                                          "seed": spec.seed, "images": str(images.resolve())})
    stage = progress.stage("images", "images/s") if progress is not None else None
    s = sample_activations(model, info, layer, images, size=samples, seed=spec.seed, crops=crops, checkpoint=ckpt,
                           identity=identity, progress=stage, notify=notify)
    try:
        f = fit_factors(s.vectors, n, method, seed=spec.seed)
    except SpecError as e:  # found only now (unreadable images, negative values on these photos)
        raise kept(e, "the sample", out) from None
    matrix = save_dictionary(out / "factors.npy", f.directions)
    facts = {k: v for k, v in f.facts.items() if k != "signs"}
    atomic_write_json(out / "factors.json", {"method": method, "layer": layer, "n": n, "model": spec.model.name,
                                             "sampled": int(s.vectors.shape[0]), "positions_seen": s.positions,
                                             "images": s.done, "crops": crops, "matrix": "factors.npy", **facts})
    shown = _map_images(model, info, layer, images, f, out, maps)
    report = None
    if render_steps:
        report = render_dictionary(spec, layer, matrix, out / RENDERS_DIR, cossim_pow=cossim_pow, progress=progress,
                                   notify=notify, stop=stop)
    layer_dir = _layer_dir(out) if report is not None else ""
    rendered = [report is not None and render_path(out / RENDERS_DIR, layer_dir, i).is_file() for i in range(n)]
    rows = [{"factor": i, "render": f"{RENDERS_DIR}/units/{layer_dir}/{i:05d}.png" if rendered[i] else None,
             "page": f"{RENDERS_DIR}/{unit_page_rel(layer_dir, i)}" if rendered[i] else None,
             "maps": [m for m in shown if m["factor"] == i]} for i in range(n)]
    page = render("factors.html", title=f"featviz \u00b7 {n} {method} factors of {layer}",
                  heading=f"{spec.model.name} \u00b7 {layer}: {n} {method.upper()} factors", rows=rows, method=method,
                  layer=layer, sampled=int(s.vectors.shape[0]), images=s.done, crops=crops,
                  gallery=f"{RENDERS_DIR}/index.html" if report is not None else None,
                  explained=facts.get("explained_variance_ratio"))
    atomic_write_text(out / "index.html", page)
    return out / "index.html"


def _layer_dir(out: Path) -> str:
    """The layer directory of the renders' sweep (from its record)."""
    record = json.loads((out / RENDERS_DIR / "sweep.json").read_text(encoding="utf-8"))
    return str(record["layers"][0]["dir"])


def _map_images(model: Any, info: Any, layer: str, root: Path, f: Any, out: Path, count: int) -> list[dict[str, Any]]:
    """Each factor's spatial map over the first ``count`` readable images: ``OUT/maps/fXX_iYY.png``."""
    pictures, names = [], []
    for rel in iter_images(root):
        if len(pictures) == count:
            break
        try:
            pictures.append(load_for_network(root / rel, info.input_size)[0])
            names.append(rel)
        except Exception:  # noqa: BLE001 - an unreadable image is not shown
            continue
    if not pictures:
        return []
    x = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 255
    acts = batch_activations(model, info, x, [layer])[layer]
    all_maps = [f.maps(a) for a in acts]  # per image (N, h, w)
    top = np.maximum(np.max([m.max(axis=(1, 2)) for m in all_maps], axis=0), 1e-12)  # per factor, over images
    ensure_dir(out, "maps")
    shown = []
    for j, (maps, name) in enumerate(zip(all_maps, names)):
        for i in range(maps.shape[0]):
            rel = f"maps/f{i:02d}_i{j:02d}.png"
            write_png(out, rel, heat_overlay(pictures[j], maps[i] / top[i], MAP_SIZE))
            shown.append({"factor": i, "image": name, "src": rel})
    return shown
