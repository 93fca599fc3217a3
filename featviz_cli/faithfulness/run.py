"""``featviz faithfulness OUT``: measure every done unit of a sweep against its dataset examples, resumably.

Needs the sweep's files and, per layer, ``featviz examples`` output in the same directory
(``OUT/examples/<layer>/examples.json``; layers without it are skipped). Everything runs at one size:
the renders' own (what they were optimized at) unless ``size`` is given; the photos (top examples and
a seeded sample of random photos from the examples' folder) are viewed at that size as the examples
pass views them. One results file per layer and technique is written as soon as it is measured; a
rerun keeps every unit whose image, examples and settings are unchanged and measures the rest. The
manifest and gallery are rebuilt at the end, so each unit's page shows its numbers.
"""
from __future__ import annotations

import random as _random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from .. import __version__
from ..config import parse_spec
from ..errors import OutputError
from ..examples.dataset import load_for_network
from ..examples.layout import EXAMPLES_JSON, layer_rel, read_examples
from ..hooks import forward_to, list_layers, resolve_layer
from ..images import iter_images
from ..models import ModelInfo, load_model
from ..models.preprocess import Preprocess
from ..outputs import atomic_write_json, ensure_dir, safe_join, sha256_file
from ..runtime import pick_device
from .layout import FAITHFULNESS_DIR, layer_file, read_document
from .measure import THRESHOLD, image_faithfulness, path_layers, pooled, unit_faithfulness

DEFAULT_RANDOM = 16  # random photos in the baseline
DEFAULT_PATH = 4  # earlier layers compared
SEED = 0  # the baseline's sample of the folder
CHUNK = 16  # images per forward pass

Notify = Callable[[str], None]


@dataclass
class FaithfulnessReport:
    """What a run measured: units measured now, kept from before, flagged; layers without examples."""

    measured: int = 0
    kept: int = 0
    flagged: int = 0
    skipped: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    index: Path | None = None
    threshold: float = THRESHOLD


class _Network:
    """The model truncated per call, with a cache of each photo's pooled activations and unit maxima."""

    def __init__(self, model: nn.Module, info: ModelInfo, device: torch.device) -> None:
        self.model, self.info, self.device = model.eval().to(device), info, device
        self.pre = Preprocess(info).to(device)
        self.cache: dict[tuple[str, int], dict[str, dict[str, torch.Tensor]]] = {}

    def run(self, images: np.ndarray, layers: Sequence[str]) -> dict[str, dict[str, torch.Tensor]]:
        """uint8 ``(B, H, W, 3)`` images -> per layer their pooled vectors ``mean (B, C)`` and unit maxima ``max (B, C)``."""
        from ..hooks import channel_view

        out: dict[str, dict[str, list[torch.Tensor]]] = {name: {"mean": [], "max": []} for name in layers}
        for a in range(0, len(images), CHUNK):
            x = torch.from_numpy(np.ascontiguousarray(images[a : a + CHUNK])).permute(0, 3, 1, 2).to(self.device)
            with torch.no_grad():
                acts = forward_to(self.model, self.pre(x.float().div_(255)), list(layers))
            for name in layers:
                out[name]["mean"].append(pooled(acts[name]))
                out[name]["max"].append(channel_view(acts[name]).double().amax(2).cpu())
        return {name: {k: torch.cat(v) for k, v in d.items()} for name, d in out.items()}

    def photos(self, root: Path, sources: Sequence[str], size: int,
               layers: Sequence[str]) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
        """Per readable source its activations (``{layer: {mean, max}}``, one image), computed once per size."""
        todo = [s for s in dict.fromkeys(sources)
                if any(name not in self.cache.get((f"{root}/{s}", size), {}) for name in layers)]
        images, ok = [], []
        for s in todo:
            try:
                images.append(load_for_network(root / s, size)[0])
                ok.append(s)
            except Exception:  # noqa: BLE001 - a photo that cannot be read is left out, as the pass does
                self.cache.setdefault((f"{root}/{s}", size), {})["unreadable"] = {}
        if ok:
            acts = self.run(np.stack(images), layers)
            for j, s in enumerate(ok):
                slot = self.cache.setdefault((f"{root}/{s}", size), {})
                for name in layers:
                    slot[name] = {k: v[j] for k, v in acts[name].items()}
        found = {s: self.cache.get((f"{root}/{s}", size), {}) for s in sources}
        return {s: d for s, d in found.items() if "unreadable" not in d and all(n in d for n in layers)}


def run_faithfulness(out: str | Path, *, device: str | None = None, size: int | None = None,
                     random: int = DEFAULT_RANDOM, path: Sequence[str] | None = None, path_count: int = DEFAULT_PATH,
                     threshold: float = THRESHOLD, notify: Notify | None = None, gallery: bool = True,
                     model: nn.Module | None = None, info: ModelInfo | None = None) -> FaithfulnessReport:
    """Measure each done unit of the sweep in ``out`` (see the module's docstring); then rebuild its gallery."""
    from ..sweep import collect_units, rebuild
    from ..sweep.record import require_record
    from ..sweep.record import unit_layers

    out = Path(out).resolve()
    record = require_record(out, " (with 'featviz examples' written into the same directory)")
    spec = parse_spec(record["spec"])
    if model is None or info is None:
        model, info = load_model(spec.model)
    net = _Network(model, info, pick_device(device or spec.device))
    for name in path or []:
        resolve_layer(net.model, name, field="--path")
    report = FaithfulnessReport(threshold=threshold)
    entries = collect_units(out, record)
    layers = unit_layers(record)
    start, structure = 0, None
    for lp in layers:
        rows = entries[start : start + len(lp.units)]
        start += len(lp.units)
        examples = read_examples(out / layer_rel(lp.layer) / EXAMPLES_JSON)
        if not examples:
            if lp.layer not in report.skipped:
                report.skipped.append(lp.layer)
            continue
        done = [e for e in rows if e["status"] == "done"]
        if not done:
            continue
        if structure is None:
            structure = _structure(net, int(done[0].get("width") or info.input_size))
        compared = list(path) if path else path_layers(*structure, lp.layer, path_count)
        found = _measure_layer(out, net, lp, done, examples, compared, size, random, threshold, report)
        if notify is not None:
            where = f"{lp.layer} ({lp.technique})" if lp.technique else lp.layer
            notify(f"faithfulness {where}: {found['measured']} measured, {found['kept']} kept, "
                   f"{found['flagged']} flagged; compared at {', '.join(compared) or 'no earlier layer'}")
    if report.skipped and notify is not None:
        notify(f"no dataset examples for {', '.join(report.skipped)}: run 'featviz examples' with the sweep's "
               f"spec and --out {out} first")
    if gallery:
        report.index = rebuild(out).index
    return report


def _structure(net: _Network, size: int) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """The model's module names (definition order), types and output shapes at ``size``."""
    x = torch.zeros(1, 3, size, size, device=net.device)
    rows = list_layers(net.model, net.pre(x))
    return [r.name for r in rows], {r.name: r.type for r in rows}, {r.name: r.shape for r in rows}


def _measure_layer(out: Path, net: _Network, lp: Any, done: list[dict[str, Any]], examples: dict[str, Any],
                   compared: list[str], size: int | None, random: int, threshold: float,
                   report: FaithfulnessReport) -> dict[str, int]:
    """Measure one layer's (and technique's) done units not measured before; write its results file."""
    examples_sha = sha256_file(out / layer_rel(lp.layer) / EXAMPLES_JSON)
    root = Path(str(examples.get("images_root") or ""))
    settings = {"path_layers": compared, "random": random, "seed": SEED, "size": size, "threshold": threshold}
    old = read_document(out, lp.dir)
    previous = old["units"] if old.get("settings") == settings and old.get("examples_sha256") == examples_sha else {}
    units: dict[str, Any] = {}
    counts = {"measured": 0, "kept": 0, "flagged": 0}
    wanted = [*compared, lp.layer]
    baseline: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    baseline_at = None
    for e in done:
        key = str(e["unit"])
        shas = e.get("sha256s") or [e.get("sha256")]
        kept = previous.get(key)
        if isinstance(kept, dict) and kept.get("sha256") == e.get("sha256") and (kept.get("sha256s") or [kept.get("sha256")]) == shas:
            units[key] = kept
            counts["kept"] += 1
            counts["flagged"] += bool(kept.get("flagged"))
            continue
        files = [out / rel for rel in e.get("images") or [e["image"]]]
        renders = [_read_png(p) for p in files]
        at = size or renders[0].shape[0]
        if baseline_at != at:
            baseline, baseline_at = _baseline(net, root, random, at, wanted), at
        top_sources = [x.get("source") for x in ((examples["units"].get(key) or {}).get("top") or []) if x.get("source")]
        tops = net.photos(root, top_sources, at, wanted)
        if not tops:
            continue
        result = _unit(net, e["unit"], renders, at, tops, baseline, compared, lp.layer, threshold)
        units[key] = {"sha256": e.get("sha256"), **({"sha256s": shas} if len(shas) > 1 else {}), **result}
        counts["measured"] += 1
        counts["flagged"] += bool(result["flagged"])
    ensure_dir(out, str(Path(layer_file(lp.dir)).parent.as_posix()))
    atomic_write_json(safe_join(out, layer_file(lp.dir)), {
        "featviz": __version__, "layer": lp.layer, "technique": lp.technique, "examples_sha256": examples_sha,
        "images_root": str(root), "settings": settings, "units": units})
    report.files.append(layer_file(lp.dir))
    report.measured += counts["measured"]
    report.kept += counts["kept"]
    report.flagged += counts["flagged"]
    return counts


def _baseline(net: _Network, root: Path, count: int, size: int,
              layers: Sequence[str]) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    """A seeded sample of ``count`` photos of the folder, with their activations (the readable ones)."""
    names = list(iter_images(root)) if root.is_dir() else []
    picked = sorted(_random.Random(SEED).sample(names, min(count, len(names))))
    return net.photos(root, picked, size, layers)


def _unit(net: _Network, unit: int, renders: list[np.ndarray], size: int,
          tops: dict[str, dict[str, dict[str, torch.Tensor]]], baseline: dict[str, dict[str, dict[str, torch.Tensor]]],
          compared: list[str],
          layer: str, threshold: float) -> dict[str, Any]:
    """One unit's numbers from its render images, its top examples and the random photos (not among them)."""
    photos = {s: d for s, d in baseline.items() if s not in tops} or baseline  # all, where the sample is all tops
    images = np.stack([_resized(r, size) for r in renders])
    acts = net.run(images, [*compared, layer])
    top_list = list(tops.values())
    top = {n: torch.stack([t[n]["mean"] for t in top_list]) for n in compared}
    rnd = {n: torch.stack([p[n]["mean"] for p in photos.values()]) for n in compared}
    top_activation = float(top_list[0][layer]["max"][unit])
    per_image = [image_faithfulness(float(acts[layer]["max"][i, unit]), top_activation, compared,
                                    {n: acts[n]["mean"][i] for n in compared}, top, rnd)
                 for i in range(len(renders))]
    return unit_faithfulness(per_image, threshold)


def _read_png(path: Path) -> np.ndarray:
    """A render image as uint8 ``(H, W, 3)``; OutputError where it cannot be read."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise OutputError(f"cannot read the render {path}: {err}; rerun the sweep to repair it") from err


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` at ``size`` x ``size`` (bilinear), or as it is when it has that size."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


__all__ = ["DEFAULT_PATH", "DEFAULT_RANDOM", "FAITHFULNESS_DIR", "FaithfulnessReport", "run_faithfulness"]
