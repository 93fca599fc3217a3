"""Caricatures (feature inversion): renders whose activations at a layer match those of a photo.

Each batch element is its own layer's objective (``objectives.activation_match`` against the
photo's whole activation tensor at that layer, Lucid's dot times a power of the cosine), so
one optimization renders the caricature of every layer. ``write_caricatures`` puts them where
``layout`` says, in any output directory; in a sweep's they use the sweep's layer directories.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from .. import objectives as obj
from ..config import Spec
from ..engine import Progress, RenderResult, render
from ..errors import SpecError
from ..hooks import forward_to, resolve_layer
from ..images import load_image
from ..models import ModelInfo, load_model
from ..models.preprocess import Preprocess
from ..outputs import atomic_write_json, ensure_dir, make_grid, output_dir, sanitize_filename, sha256_file, to_uint8, write_png
from .layout import CARICATURES_DIR, CARICATURES_JSON, caricature_rel

DEFAULT_COSSIM_POW = 1.0


@dataclass
class Caricatures:
    """A photo's caricatures: the render (one image per layer), the photo, and each layer's similarity."""

    result: RenderResult
    photo: torch.Tensor  # (3, S, S) in [0, 1], at the model's input size
    layers: list[str]
    similarity: list[float]  # cosine of the render's activations with the photo's, per layer


def photo_activations(model: nn.Module, info: ModelInfo, photo: torch.Tensor,
                      layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The activations of one photo (3, H, W) in [0, 1] at ``layers``: ``{layer: (C, ...)}`` on the CPU."""
    return {name: a[0] for name, a in batch_activations(model, info, photo[None], layers).items()}


def caricature_objective(targets: dict[str, torch.Tensor], *, cossim_pow: float = DEFAULT_COSSIM_POW,
                         name: str = "photo") -> obj.Objective:
    """Batch element ``i`` matches the ``i``-th target (layer -> activations) and nothing else."""
    terms = [obj.activation_match(layer, t, cossim_pow=cossim_pow, batch=i, name=name)
             for i, (layer, t) in enumerate(targets.items())]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two activation tensors, flattened."""
    return float(torch.nn.functional.cosine_similarity(a.flatten().float(), b.flatten().float(), dim=0))


def check_photo(path: str | Path, what: str) -> Path:
    """``path`` if it is a file; ``SpecError`` naming ``--image`` otherwise (``what``: the fix's words)."""
    p = Path(path)
    if not p.is_file():
        raise SpecError("--image", f"{p}: {'a folder' if p.is_dir() else 'no such file'}; give {what}.")
    return p


def caricature_targets(model: nn.Module, info: ModelInfo, photo_path: str | Path,
                       layers: Sequence[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The photo (3, S, S) and its activations at each of ``layers``, once every input is known to be good:
    ``SpecError`` naming ``--layers`` or ``--image`` otherwise (the command calls it before writing anything)."""
    if not layers:
        raise SpecError("--layers", "no layer to caricature; give --layers a,b or a spec whose objective names one.")
    for name in layers:
        resolve_layer(model, name, field="--layers")
    photo = load_image(photo_path, info.input_size, field="--image")
    targets = photo_activations(model, info, photo, layers)
    for name, t in targets.items():
        if t.dim() < 2:
            raise SpecError("--layers", f"layer {name!r} has no spatial map or tokens to match (its activations are "
                            f"{tuple(t.shape)}); choose a convolutional layer.")
    return photo, targets


def render_caricatures(spec: Spec, photo_path: str | Path, layers: Sequence[str], *,
                       cossim_pow: float = DEFAULT_COSSIM_POW, model: nn.Module | None = None,
                       info: ModelInfo | None = None, progress: Progress | None = None) -> Caricatures:
    """Render the caricature of the photo at each of ``layers`` in one batch, with the spec's model,
    parameterization, transforms, steps and seed (its objective is not used)."""
    layers = list(dict.fromkeys(layers))
    if model is None or info is None:
        model, info = load_model(spec.model)
    photo, targets = caricature_targets(model, info, photo_path, layers)
    here = copy.deepcopy(spec)
    here.param.batch, here.interpolate = len(layers), None
    objective = caricature_objective(targets, cossim_pow=cossim_pow, name=Path(photo_path).name)
    result = render(here, model=model, info=info, progress=progress, objective=objective)
    seen = batch_activations(model, info, result.images, layers)
    sims = [round(similarity(seen[name][i], targets[name]), 6) for i, name in enumerate(layers)]
    return Caricatures(result, photo, layers, sims)


def batch_activations(model: nn.Module, info: ModelInfo, images: torch.Tensor,
                      layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The activations of a (B, 3, H, W) batch in [0, 1], resized to the network's input, at ``layers`` (CPU)."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    x = images.float()
    if x.shape[-1] != info.input_size or x.shape[-2] != info.input_size:
        x = torch.nn.functional.interpolate(x, size=(info.input_size, info.input_size), mode="bilinear",
                                            align_corners=False)
    with torch.no_grad():
        acts = forward_to(model.eval(), Preprocess(info).to(device)(x.to(device)), list(layers))
    return {name: acts[name].float().cpu() for name in layers}


def write_caricatures(c: Caricatures, out: Path, photo_name: str, *, layer_dirs: dict[str, str] | None = None,
                      settings: dict[str, Any] | None = None) -> Path:
    """Write ``OUT/caricatures/``: the photo, one PNG per layer, the labelled grid, and the JSON last."""
    ensure_dir(out, CARICATURES_DIR)
    dirs = layer_dirs or {name: sanitize_filename(name) for name in c.layers}
    images = to_uint8(c.result.images.permute(0, 2, 3, 1))
    photo = to_uint8(c.photo.permute(1, 2, 0)[None])[0]
    photo_rec = write_png(out, caricature_rel("photo.png"), photo)
    entries = []
    for i, name in enumerate(c.layers):
        rel = caricature_rel(f"{dirs[name]}.png")
        rec = write_png(out, rel, images[i])
        entries.append({"layer": name, "image": rel, "sha256": rec["sha256"], "objective": c.result.values[i],
                        "similarity": c.similarity[i]})
    tile = images.shape[1]
    small = to_uint8(torch.nn.functional.interpolate(c.photo[None], size=(tile, tile), mode="bilinear",
                                                     align_corners=False).permute(0, 2, 3, 1))
    grid = make_grid(torch.cat([torch.from_numpy(small), torch.from_numpy(images)]).numpy(),
                     [photo_name] + [f"{n} cos {s:.2f}" for n, s in zip(c.layers, c.similarity)])
    write_png(out, caricature_rel("grid.png"), grid)
    doc = {"photo": photo_name, "photo_image": caricature_rel("photo.png"), "photo_sha256": photo_rec["sha256"],
           "grid": caricature_rel("grid.png"), "objective": c.result.description, "steps": c.result.steps,
           "seed": c.result.seed, "size": int(images.shape[1]), **(settings or {}), "layers": entries}
    path = out / CARICATURES_DIR / CARICATURES_JSON
    atomic_write_json(path, doc)
    return path


def done_already(out: Path, settings: dict[str, Any]) -> bool:
    """Whether ``OUT/caricatures`` already holds these caricatures (same settings, files intact)."""
    from .layout import read_caricatures

    doc = read_caricatures(out)
    if doc is None or any(doc.get(k) != v for k, v in settings.items()):
        return False
    want = settings.get("layers_asked") or []
    have = [e for e in doc["layers"] if e.get("layer") in want]
    return len(have) == len(want) and all(sha256_file(out / e["image"]) == e.get("sha256") for e in have)


def caricature_layers(spec: Spec, out: Path, layers: Sequence[str] | None) -> tuple[list[str], dict[str, str] | None]:
    """The layers to caricature and their file names: ``layers`` if given, else a sweep's in ``out``
    (with its layer directories), else the spec's objective layers."""
    from ..sweep.record import read_record

    record = read_record(out) if (out / "sweep.json").is_file() else None
    dirs = {lay["layer"]: lay["dir"] for lay in record["layers"]} if record else None
    if layers is not None:
        chosen = list(layers)
    elif record:
        chosen = list(dirs)  # type: ignore[arg-type]
    else:
        chosen = [name for t in spec.objective for name in (t.layer if isinstance(t.layer, list) else [t.layer])
                  if name]
    if dirs is not None and any(name not in dirs for name in chosen):
        dirs = {**{n: sanitize_filename(n) for n in chosen}, **dirs}
    return list(dict.fromkeys(chosen)), dirs


def run_caricatures(spec: Spec, photo_path: str | Path, out: str | Path, *, layers: Sequence[str] | None = None,
                    cossim_pow: float = DEFAULT_COSSIM_POW, progress: Progress | None = None) -> tuple[Path, bool]:
    """Caricatures of a photo per layer into ``OUT/caricatures/`` (see ``layout``); a sweep directory's
    gallery index is rebuilt to show them. Returns the JSON's path and whether anything was rendered
    (False: the same caricatures were there, intact)."""
    from ..config import spec_to_dict
    from ..sweep.plan import hash_of

    out = Path(out)
    chosen, dirs = caricature_layers(spec, out, layers)
    view = {k: v for k, v in spec_to_dict(spec).items() if k not in ("output", "device", "name", "objective", "sweep",
                                                                      "dataset")}
    photo_file = check_photo(photo_path, "the photo to caricature")
    settings = {"cossim_pow": cossim_pow, "layers_asked": chosen, "photo_file_sha256": sha256_file(photo_file),
                "render_hash": hash_of(view)}
    if chosen and done_already(out, settings):
        return out / CARICATURES_DIR / CARICATURES_JSON, False
    model, info = load_model(spec.model)
    caricature_targets(model, info, photo_file, chosen)  # every check before the output directory
    with output_dir(out) as path:
        c = render_caricatures(spec, photo_file, chosen, cossim_pow=cossim_pow, model=model, info=info,
                               progress=progress)
        written = write_caricatures(c, path, photo_file.name, layer_dirs=dirs, settings=settings)
    if (path / "sweep.json").is_file():
        from ..sweep import rebuild

        rebuild(path)
    return written, True
