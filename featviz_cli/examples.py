"""Dataset examples: the natural images that excite each unit most, beside its visualization.

A pass streams a folder of images (recursive; JPEG, PNG, WebP) through the network
truncated at the layer(s), in batches decoded by DataLoader worker processes with the
model's own preprocessing, and keeps for every unit the top-k images by the unit's
maximum over space (and optionally the bottom-k by its minimum), with the position of
that extreme. Memory is bounded by k per unit: each batch is merged into a ``(units, k)``
buffer, never kept. The pass checkpoints its buffers every N images and resumes after a
kill; unreadable files are counted and listed, never fatal.

The crop around an example's maximum is sized by the unit's receptive field, computed
from the gradient of the unit with respect to the input (:func:`receptive_field`).

Pieces, each usable alone: :func:`iter_images` (the sorted walk), :func:`view_of`
(resize + centre-crop geometry), :class:`Ranking` (streaming top-k), :func:`receptive_field`,
:func:`collect` (the pass), :func:`write_examples` (files, ``examples.json``, ``index.html``)
and :func:`run_examples` (a spec in, files out; what ``featviz examples`` calls).

On disk, under the output directory OUT (the layout the sweep gallery reads)::

    OUT/examples/<layer>/examples.json                 written last
    OUT/examples/<layer>/index.html                    a page showing every unit's examples
    OUT/examples/<layer>/unit_00005/top_00_full.jpg    the whole image, receptive field marked
    OUT/examples/<layer>/unit_00005/top_00_crop.png    the crop around the maximum
    OUT/examples/checkpoint-<hash>.pt                  the pass's state (resume, incremental reruns)
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import html
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
from PIL import Image, ImageDraw, ImageOps

from . import __version__
from .config import Spec
from .engine import Progress
from .models.preprocess import Preprocess
from .runtime import pick_device, resolve_precision
from .errors import SpecError
from .hooks import OUTPUT, channel_view, forward_to, resolve_layer
from .models import ModelInfo, load_model
from .images import IMAGE_SUFFIXES, iter_images
from .outputs import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    png_bytes,
    prepare_output_dir,
    safe_join,
    sanitize_filename,
)

EXAMPLES_DIR = "examples"
EXAMPLES_JSON = "examples.json"
INDEX_HTML = "index.html"
CROP_SIZE = 128  # longer side of a saved crop, pixels
FULL_SIZE = 320  # longer side of a saved whole image, pixels
JPEG_QUALITY = 90
MAX_LISTED_UNREADABLE = 1000  # unreadable files listed by name (all are counted)
RF_SAMPLES = 2  # noise images averaged for the receptive field (per position)
EMPTY = 2**62  # image index of an empty slot: sorts after every real image on ties
FORMAT = 1  # checkpoint format
BOX_COLOUR = (255, 214, 0)
VIEW_COLOUR = (255, 255, 255)

Notify = Callable[[str], None]

# ---------------------------------------------------------------- the folder


def count_images(root: Path) -> int:
    """How many files :func:`iter_images` yields (one walk, no memory)."""
    return sum(1 for _ in iter_images(root))


def chain_hash(previous: str, paths: Sequence[str]) -> str:
    """Extend a hash chain over file names: resuming checks that the folder's first N files are unchanged."""
    digest = bytes.fromhex(previous)
    for p in paths:
        digest = hashlib.sha256(digest + p.encode("utf-8", "surrogateescape")).digest()
    return digest.hex()


CHAIN_START = "00" * 32

# ---------------------------------------------------------------- geometry


@dataclass(frozen=True)
class View:
    """How a ``width`` x ``height`` image becomes the network's ``size`` x ``size`` input.

    The shorter side is resized to ``size`` and the centre ``size`` x ``size`` square is
    taken (the usual evaluation crop). ``to_source`` maps input pixels back to the image.
    """

    width: int
    height: int
    size: int

    @property
    def resized(self) -> tuple[int, int]:
        """(width, height) after resizing the shorter side to ``size``."""
        short = min(self.width, self.height)
        return (max(self.size, round(self.width * self.size / short)),
                max(self.size, round(self.height * self.size / short)))

    @property
    def offset(self) -> tuple[int, int]:
        """(left, top) of the centre crop in resized pixels."""
        rw, rh = self.resized
        return (rw - self.size) // 2, (rh - self.size) // 2

    def to_source(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """A box ``(x0, y0, x1, y1)`` in input pixels as a box in the image's own pixels."""
        rw, rh = self.resized
        left, top = self.offset
        sx, sy = self.width / rw, self.height / rh
        x0, y0, x1, y1 = box
        return ((x0 + left) * sx, (y0 + top) * sy, (x1 + left) * sx, (y1 + top) * sy)

    @property
    def seen(self) -> tuple[float, float, float, float]:
        """The part of the image the network sees, in the image's pixels."""
        return self.to_source((0, 0, self.size, self.size))


def view_of(width: int, height: int, size: int) -> View:
    """The :class:`View` of an image of ``width`` x ``height`` for a ``size`` px network input."""
    return View(int(width), int(height), int(size))


def open_rgb(path: Path, draft_for: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Open an image upright (EXIF orientation applied) as RGB; also its full upright (width, height).

    ``draft_for`` lets a JPEG decode at a reduced scale that still covers a ``draft_for`` px
    network input (much faster for large photos); the image is then smaller than its file.
    """
    with Image.open(path) as im:
        stored_w, stored_h = im.size
        swapped = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        width, height = (stored_h, stored_w) if swapped else (stored_w, stored_h)
        if draft_for is not None:
            rw, rh = view_of(width, height, draft_for).resized
            im.draft("RGB", (rh, rw) if swapped else (rw, rh))  # a no-op except for JPEG
        return ImageOps.exif_transpose(im).convert("RGB"), (width, height)


def load_for_network(path: Path, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The network's view of an image: ``(size, size, 3)`` uint8, and the image's upright (width, height)."""
    im, (w, h) = open_rgb(path, draft_for=size)
    scale = im.size[0] / w  # < 1 when a JPEG was decoded at a reduced scale
    x0, y0, x1, y1 = view_of(w, h, size).seen
    out = im.resize((size, size), Image.Resampling.BILINEAR, box=(x0 * scale, y0 * scale, x1 * scale, y1 * scale))
    return np.asarray(out, dtype=np.uint8), (w, h)


class _Chunks(torch.utils.data.IterableDataset):
    """Consecutive chunks of the folder's images from index ``start`` on, decoded for the network.

    Worker ``w`` of ``n`` takes chunks ``w, w + n, ...``; the DataLoader returns workers'
    results in turn, so chunks arrive in order. A file that cannot be read gives a black
    image with ``ok`` False and the reason, never an exception.
    """

    def __init__(self, root: Path, start: int, chunk: int, size: int) -> None:
        super().__init__()
        self.root, self.start, self.chunk, self.size = Path(root), start, chunk, size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        items: list[tuple[int, str]] = []
        for i, rel in enumerate(iter_images(self.root)):
            if i < self.start or ((i - self.start) // self.chunk) % workers != worker:
                continue
            items.append((i, rel))
            if len(items) == self.chunk:
                yield self._load(items)
                items = []
        if items:
            yield self._load(items)

    def _load(self, items: list[tuple[int, str]]) -> dict[str, Any]:
        images = np.zeros((len(items), self.size, self.size, 3), dtype=np.uint8)
        ok, errors = [], []
        for j, (_, rel) in enumerate(items):
            try:
                images[j] = load_for_network(self.root / rel, self.size)[0]
                ok.append(True)
                errors.append("")
            except Exception as e:  # noqa: BLE001 - any unreadable file is reported, never fatal
                ok.append(False)
                errors.append(f"{type(e).__name__}: {e}".splitlines()[0][:200])
        return {
            "start": items[0][0],
            "images": torch.from_numpy(images).permute(0, 3, 1, 2),
            "ok": torch.tensor(ok),
            "paths": [rel for _, rel in items],
            "errors": errors,
        }


# ---------------------------------------------------------------- streaming top-k


@dataclass
class Ranking:
    """The best ``k`` images so far for every unit: ``(units, k)`` values, image indices, flat positions.

    ``largest`` keeps the highest values (top-k), else the lowest (bottom-k). Ties go to the
    earlier image, so the result does not depend on batch boundaries. Empty slots (fewer
    images than ``k``) have index ``EMPTY``.
    """

    values: torch.Tensor
    index: torch.Tensor
    pos: torch.Tensor
    largest: bool = True

    @classmethod
    def empty(cls, units: int, k: int, largest: bool = True) -> "Ranking":
        """A ranking with no image yet."""
        fill = -math.inf if largest else math.inf
        return cls(torch.full((units, k), fill), torch.full((units, k), EMPTY, dtype=torch.long),
                   torch.zeros((units, k), dtype=torch.long), largest)

    @property
    def k(self) -> int:
        """Images kept per unit."""
        return self.values.shape[1]

    def merge(self, values: torch.Tensor, pos: torch.Tensor, index: torch.Tensor) -> "Ranking":
        """A new ranking with a batch added: ``values``/``pos`` are ``(B, units)``, ``index`` is ``(B,)``."""
        units = self.values.shape[0]
        new_v = values.detach().float().cpu().t()
        new_v = torch.nan_to_num(new_v, nan=-math.inf if self.largest else math.inf)
        v = torch.cat([self.values, new_v], 1)
        i = torch.cat([self.index, index.cpu().long().view(1, -1).expand(units, -1)], 1)
        p = torch.cat([self.pos, pos.cpu().long().t()], 1)
        order = torch.argsort(i, dim=1, stable=True)
        v, i, p = v.gather(1, order), i.gather(1, order), p.gather(1, order)
        order = torch.argsort(v, dim=1, descending=self.largest, stable=True)[:, : self.k]
        return Ranking(v.gather(1, order), i.gather(1, order), p.gather(1, order), self.largest)

    def state(self) -> dict[str, torch.Tensor]:
        """The buffers, for a checkpoint."""
        return {"values": self.values, "index": self.index, "pos": self.pos}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], largest: bool) -> "Ranking":
        """A ranking back from :meth:`state`."""
        return cls(state["values"], state["index"], state["pos"], largest)


def extremes(act: torch.Tensor, largest: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and unit, the max (or min) over space and its flat position: two ``(B, units)`` tensors."""
    flat = channel_view(act).float()
    return flat.max(dim=2) if largest else flat.min(dim=2)


# ---------------------------------------------------------------- receptive field


@dataclass(frozen=True)
class ReceptiveField:
    """Where a unit at map position (y, x) looks in the ``input_size`` px network input.

    Measured from the gradient of the layer's units at one reference position with respect to
    noise images: ``size`` is the side of the square around the gradient's centre that holds
    ``mass`` of the gradient (the effective receptive field), ``full`` the side of the region
    where the gradient is nonzero at all (the theoretical one, clipped to the input), ``stride``
    the input pixels per map step (measured from a second position) and ``centre`` the input
    position of map position ``ref``.
    """

    size: float
    full: float
    stride: tuple[float, float]
    centre: tuple[float, float]
    ref: tuple[int, int]
    mass: float
    input_size: int
    map_size: tuple[int, int]

    def box(self, y: int, x: int) -> tuple[float, float, float, float]:
        """The crop box ``(x0, y0, x1, y1)`` in input pixels for map position (y, x), clipped to the input."""
        cy = self.centre[0] + (y - self.ref[0]) * self.stride[0]
        cx = self.centre[1] + (x - self.ref[1]) * self.stride[1]
        half, n = self.size / 2, self.input_size
        return (max(0.0, cx - half), max(0.0, cy - half), min(float(n), cx + half), min(float(n), cy + half))


def _square_side(grad: torch.Tensor, cy: float, cx: float, mass: float) -> float:
    """Side of the smallest square centred at (cy, cx) holding ``mass`` of ``grad`` (the whole of it for 1.0)."""
    total = float(grad.sum())
    h, w = grad.shape
    integral = torch.nn.functional.pad(grad.cumsum(0).cumsum(1), (1, 0, 1, 0))
    target = total * mass if mass < 1 else total * (1 - 1e-9)
    iy, ix = int(round(cy - 0.5)), int(round(cx - 0.5))
    for r in range(0, max(h, w) + 1):
        y0, y1, x0, x1 = max(0, iy - r), min(h, iy + r + 1), max(0, ix - r), min(w, ix + r + 1)
        inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        if float(inside) >= target:
            return float(2 * r + 1)
    return float(max(h, w))


def _inside(grad: torch.Tensor) -> bool:
    """Whether the nonzero part of a 2-D map stays off its border (the region is not clipped)."""
    nz = (grad > 0).nonzero()
    h, w = grad.shape
    return bool(nz[:, 0].min() > 0 and nz[:, 1].min() > 0 and nz[:, 0].max() < h - 1 and nz[:, 1].max() < w - 1)


def _extent_centre(grad: torch.Tensor) -> tuple[float, float]:
    """Centre (y, x) of the bounding box of the nonzero part of a 2-D map, in pixel-centre coordinates."""
    nz = (grad > 0).nonzero()
    return (float(nz[:, 0].min() + nz[:, 0].max() + 1) / 2, float(nz[:, 1].min() + nz[:, 1].max() + 1) / 2)


def _centroid(grad: torch.Tensor) -> tuple[float, float]:
    """Centre of mass (y, x) of a 2-D map, in pixel-centre coordinates (pixel i spans [i, i+1))."""
    total = grad.sum()
    ys = torch.arange(grad.shape[0], dtype=grad.dtype) + 0.5
    xs = torch.arange(grad.shape[1], dtype=grad.dtype) + 0.5
    return float((grad.sum(1) * ys).sum() / total), float((grad.sum(0) * xs).sum() / total)


def receptive_field(
    model: nn.Module,
    info: ModelInfo,
    layer: str,
    *,
    mass: float = 0.9,
    device: torch.device | str = "cpu",
    samples: int = RF_SAMPLES,
    seed: int = 0,
) -> ReceptiveField | None:
    """Measure a layer's receptive field from input gradients on seeded noise (None without a spatial map).

    The gradient of the sum of all units' magnitudes at the map's centre (and at a second
    position, for the stride) with respect to ``samples`` noise images; only the input gets a gradient,
    the model's parameters are untouched.
    """
    n = info.input_size
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(2 * samples, 3, n, n, generator=gen).to(device).requires_grad_(True)
    pre = Preprocess(info).to(device)
    with torch.enable_grad():
        act = forward_to(model, pre(x), [layer])[layer]
        if act.dim() != 4 or act.shape[-1] * act.shape[-2] == 1:
            return None
        h, w = act.shape[-2:]
        ref = (h // 2, w // 2)
        step = (max(1, h // 4) if h > 1 else 0, max(1, w // 4) if w > 1 else 0)
        other = (min(h - 1, ref[0] + step[0]), min(w - 1, ref[1] + step[1]))
        # |a| summed over units: opposite units (a detector and its negation) do not cancel.
        total = act[:samples, :, ref[0], ref[1]].abs().sum() + act[samples:, :, other[0], other[1]].abs().sum()
        (grad,) = torch.autograd.grad(total, x)
    g = grad.detach().abs().double().cpu()
    g_ref, g_other = g[:samples].sum((0, 1)), g[samples:].sum((0, 1))
    if float(g_ref.sum()) == 0 or float(g_other.sum()) == 0:  # dead units everywhere: fall back to strides
        stride = (n / h, n / w)
        centre = ((ref[0] + 0.5) * stride[0], (ref[1] + 0.5) * stride[1])
        return ReceptiveField(max(stride), max(stride), stride, centre, ref, mass, n, (h, w))
    unclipped = _inside(g_ref) and _inside(g_other)
    # The centre of the nonzero region is exact for convolutions; when it is clipped by the
    # input's border, the centre of mass is the better estimate.
    cy, cx = _extent_centre(g_ref) if unclipped else _centroid(g_ref)
    oy, ox = _extent_centre(g_other) if unclipped else _centroid(g_other)
    stride = [n / h, n / w]  # exact when the input size is a multiple of the layer's total stride
    if unclipped:  # measure it
        if other[0] != ref[0]:
            stride[0] = (oy - cy) / (other[0] - ref[0])
        if other[1] != ref[1]:
            stride[1] = (ox - cx) / (other[1] - ref[1])
    nonzero = (g_ref > 0).nonzero()
    full = float(max(nonzero[:, 0].max() - nonzero[:, 0].min(), nonzero[:, 1].max() - nonzero[:, 1].min()) + 1)
    size = min(_square_side(g_ref, cy, cx, mass), full)
    return ReceptiveField(size, full, (stride[0], stride[1]), (cy, cx), ref, mass, n, (int(h), int(w)))


# ---------------------------------------------------------------- the pass


@dataclass
class LayerExamples:
    """One layer's result: its rankings, activation shape (without batch) and receptive field."""

    layer: str
    shape: tuple[int, ...]
    top: Ranking
    bottom: Ranking | None
    rf: ReceptiveField | None

    @property
    def units(self) -> int:
        """Number of units (channels) of the layer."""
        return self.top.values.shape[0]

    @property
    def map_width(self) -> int:
        """Width of the spatial map (positions are flat indices into it); 1 without one."""
        return int(self.shape[-1]) if len(self.shape) == 3 else 1


@dataclass
class ExamplesResult:
    """What a pass found: per-layer rankings, the file of every ranked image, counts and timings."""

    layers: dict[str, LayerExamples]
    paths: dict[int, str]
    root: Path
    info: ModelInfo
    k: int
    images_seen: int
    files: int
    unreadable: int
    unreadable_files: list[dict[str, str]]
    resumed_from: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def _fingerprint(info: ModelInfo, identity: dict[str, Any], layers: list[str], k: int, bottom: bool,
                 root: Path, mass: float) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed."""
    return {
        "format": FORMAT, "model": identity, "input_size": info.input_size, "mean": list(info.mean),
        "std": list(info.std), "value_range": list(info.value_range), "layers": list(layers), "k": k,
        "bottom": bottom, "images": str(Path(root).resolve()), "rf_mass": mass,
    }


def checkpoint_path(out_dir: Path, fingerprint: dict[str, Any]) -> Path:
    """``OUT/examples/checkpoint-<hash>.pt``: one per pass configuration."""
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Path(out_dir) / EXAMPLES_DIR / f"checkpoint-{key}.pt"


@dataclass
class _State:
    """Everything a checkpoint holds; replaced as a whole after each batch, so it is always consistent."""

    done: int
    chain: str
    seen: int
    unreadable: int
    unreadable_files: list[dict[str, str]]
    rankings: dict[str, tuple[Ranking, Ranking | None]]
    paths: dict[int, str]


def _save(path: Path, fingerprint: dict[str, Any], state: _State, shapes: dict[str, tuple[int, ...]]) -> None:
    """Write the pass's state to ``path`` atomically (a ``torch.load(weights_only=True)``-safe dict)."""
    buf = io.BytesIO()
    torch.save({
        "fingerprint": fingerprint, "done": state.done, "chain": state.chain, "seen": state.seen,
        "unreadable": state.unreadable, "unreadable_files": state.unreadable_files, "paths": state.paths,
        "layers": {name: {"shape": list(shapes[name]), "top": top.state(),
                          "bottom": bottom.state() if bottom is not None else None}
                   for name, (top, bottom) in state.rankings.items()},
    }, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_checkpoint(path: Path, fingerprint: dict[str, Any], root: Path,
                     shapes: dict[str, tuple[int, ...]]) -> _State | None:
    """The saved state if ``path`` exists; SpecError if the folder changed under it."""
    if not path.exists():
        return None
    try:
        data = torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged checkpoint is reported with the fix
        raise SpecError("dataset", f"{path}: cannot read the checkpoint ({type(e).__name__}); "
                        "delete it or rerun with --restart.") from None
    if data.get("fingerprint") != fingerprint:
        raise SpecError("dataset", f"{path} belongs to another pass; delete it or rerun with --restart.")
    done = int(data["done"])
    first = []
    for i, rel in enumerate(iter_images(root)):
        if i >= done:
            break
        first.append(rel)
    if len(first) != done or chain_hash(CHAIN_START, first) != data["chain"]:
        raise SpecError("dataset.images", f"{root}: the folder's files changed since the checkpoint "
                        f"{path} was saved ({done} files processed); rerun with --restart to start over.")
    rankings = {}
    for name, layer in data["layers"].items():
        if tuple(layer["shape"]) != shapes[name]:
            raise SpecError("dataset", f"{path}: layer {name!r} had shape {layer['shape']}; rerun with --restart.")
        bottom = layer["bottom"]
        rankings[name] = (Ranking.from_state(layer["top"], True),
                          Ranking.from_state(bottom, False) if bottom is not None else None)
    return _State(done, data["chain"], int(data["seen"]), int(data["unreadable"]),
                  list(data["unreadable_files"]), rankings, dict(data["paths"]))


def collect(
    model: nn.Module,
    info: ModelInfo,
    layers: Sequence[str],
    images: str | Path,
    *,
    k: int = 8,
    bottom: bool = False,
    batch_size: int = 32,
    workers: int = 2,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    rf_mass: float = 0.9,
    checkpoint: Path | None = None,
    checkpoint_every: int = 1000,
    identity: dict[str, Any] | None = None,
    progress: Progress | None = None,
    notify: Notify | None = None,
) -> ExamplesResult:
    """Stream the images under ``images`` through ``model`` and rank them for every unit of ``layers``.

    The model is put in eval mode and channels-last memory format. With ``checkpoint`` (a file
    path) the state is saved every ``checkpoint_every`` images and at the end, and a pass that
    finds its checkpoint resumes from it. ``identity`` describes the model for that check
    (default: its name). ``progress(done, total, images_per_s)``; ``notify`` gets one-line
    messages (resuming).
    """
    t0 = time.perf_counter()
    root = Path(images)
    if not root.is_dir():
        raise SpecError("dataset.images", f"{root}: not a folder; give the folder of images (--images DIR).")
    device = torch.device(device)
    layers = list(dict.fromkeys(layers))
    model = model.to(device).eval()
    for name in layers:
        if name != OUTPUT:
            resolve_layer(model, name, field="dataset.layers")
    total = count_images(root)
    if total == 0:
        raise SpecError("dataset.images", f"{root}: no {'/'.join(IMAGE_SUFFIXES)} files in it or below; "
                        "check the path.")
    shapes = _layer_shapes(model, info, layers, device)
    rfs = {name: receptive_field(model, info, name, mass=rf_mass, device=device)
           if name != OUTPUT and len(shapes[name]) == 3 else None for name in layers}
    t_rf = time.perf_counter() - t0
    fingerprint = _fingerprint(info, identity or {"name": info.name}, layers, k, bottom, root, rf_mass)
    state = _load_checkpoint(checkpoint, fingerprint, root, shapes) if checkpoint else None
    resumed_from = state.done if state else 0
    if state is None:
        empty = {name: (Ranking.empty(shapes[name][0], k, True),
                        Ranking.empty(shapes[name][0], k, False) if bottom else None) for name in layers}
        state = _State(0, CHAIN_START, 0, 0, [], empty, {})
    elif notify is not None:
        notify(f"resuming from {checkpoint}: {state.done} of {total} images already done")
    if checkpoint:
        Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
    model = model.to(memory_format=torch.channels_last)  # about 1.4x faster forwards on CPU too
    pre = Preprocess(info).to(device)
    last_saved, t_pass, started = state.done, time.perf_counter(), state.done
    loader = torch.utils.data.DataLoader(
        _Chunks(root, state.done, batch_size, info.input_size), batch_size=None, num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    try:
        for chunk in loader:
            state = _step(state, chunk, model, pre, layers, device, autocast_dtype)
            if checkpoint and state.done - last_saved >= checkpoint_every:
                _save(checkpoint, fingerprint, state, shapes)
                last_saved = state.done
            if progress is not None:
                progress(state.done, max(total, state.done),
                         (state.done - started) / max(1e-9, time.perf_counter() - t_pass))
    except KeyboardInterrupt:
        if checkpoint:
            _save(checkpoint, fingerprint, state, shapes)
        raise
    if checkpoint and (state.done != last_saved or not checkpoint.exists()):
        _save(checkpoint, fingerprint, state, shapes)
    t_done = time.perf_counter() - t_pass
    result_layers = {
        name: LayerExamples(name, shapes[name], top, bot, rfs[name]) for name, (top, bot) in state.rankings.items()
    }
    return ExamplesResult(
        layers=result_layers, paths=state.paths, root=root, info=info, k=k, images_seen=state.seen,
        files=state.done, unreadable=state.unreadable, unreadable_files=state.unreadable_files,
        resumed_from=resumed_from,
        timings={"receptive_field_s": round(t_rf, 3), "pass_s": round(t_done, 3),
                 "images_per_s": round((state.done - started) / max(1e-9, t_done), 2)},
    )


def _layer_shapes(model: nn.Module, info: ModelInfo, layers: list[str],
                  device: torch.device) -> dict[str, tuple[int, ...]]:
    """Each layer's activation shape without the batch dimension, as ``(units, H, W)``/``(units, S)``."""
    x = torch.zeros(1, 3, info.input_size, info.input_size, device=device)
    with torch.no_grad():
        acts = forward_to(model, Preprocess(info).to(device)(x), layers)
    shapes = {}
    for name in layers:
        act = acts[name]
        units = channel_view(act).shape[1]
        shapes[name] = (units, *act.shape[2:]) if act.dim() == 4 else (units, channel_view(act).shape[2])
    return shapes


def _step(state: _State, chunk: dict[str, Any], model: nn.Module, pre: nn.Module, layers: list[str],
          device: torch.device, autocast_dtype: torch.dtype | None) -> _State:
    """The state after one chunk of images: rankings merged, counts and the file chain extended."""
    if chunk["start"] != state.done:  # pragma: no cover - the DataLoader keeps chunks in order
        raise RuntimeError(f"image chunks out of order: got {chunk['start']}, expected {state.done}")
    ok: torch.Tensor = chunk["ok"]
    paths: list[str] = chunk["paths"]
    index = torch.arange(state.done, state.done + len(paths))
    unreadable_files = list(state.unreadable_files)
    for j in (~ok).nonzero().flatten().tolist():
        if len(unreadable_files) < MAX_LISTED_UNREADABLE:
            unreadable_files.append({"source": paths[j], "error": chunk["errors"][j]})
    rankings = dict(state.rankings)
    new_paths = dict(state.paths)
    if bool(ok.any()):
        x = chunk["images"][ok].to(device, non_blocking=True).float().div_(255)
        ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            acts = forward_to(model, pre(x).contiguous(memory_format=torch.channels_last), layers)
        idx = index[ok]
        for name in layers:
            top, bot = rankings[name]
            values, pos = extremes(acts[name], True)
            top = top.merge(values, pos, idx)
            if bot is not None:
                values, pos = extremes(acts[name], False)
                bot = bot.merge(values, pos, idx)
            rankings[name] = (top, bot)
        for i in idx.tolist():
            new_paths[i] = paths[i - state.done]
        kept = set(torch.cat([r.index.flatten() for pair in rankings.values() for r in pair if r is not None]).tolist())
        new_paths = {i: p for i, p in new_paths.items() if i in kept}
    return _State(
        done=state.done + len(paths), chain=chain_hash(state.chain, paths), seen=state.seen + int(ok.sum()),
        unreadable=state.unreadable + int((~ok).sum()), unreadable_files=unreadable_files,
        rankings=rankings, paths=new_paths,
    )


# ---------------------------------------------------------------- files


def unit_dir(unit: int) -> str:
    """The folder of one unit's examples inside the layer's folder."""
    return f"unit_{unit:05d}"


def _plan(result: ExamplesResult) -> dict[str, list[dict[str, Any]]]:
    """Every example to write, grouped by source file: ``{source: [entry, ...]}`` (entries carry their layer)."""
    jobs: dict[str, list[dict[str, Any]]] = {}
    for name, lx in result.layers.items():
        for kind, ranking in (("top", lx.top), ("bottom", lx.bottom)):
            if ranking is None:
                continue
            for unit in range(lx.units):
                for rank in range(ranking.k):
                    i = int(ranking.index[unit, rank])
                    if i == EMPTY:
                        continue
                    pos = int(ranking.pos[unit, rank])
                    y, x = divmod(pos, lx.map_width) if len(lx.shape) == 3 else (0, pos)  # tokens: x is the token
                    box = lx.rf.box(y, x) if lx.rf is not None else (0.0, 0.0, float(result.info.input_size),
                                                                       float(result.info.input_size))
                    stem = f"{unit_dir(unit)}/{kind}_{rank:02d}"
                    jobs.setdefault(result.paths[i], []).append({
                        "layer": name, "unit": unit, "kind": kind, "rank": rank,
                        "activation": float(ranking.values[unit, rank]), "x": x, "y": y, "input_box": box,
                        "full": f"{stem}_full.jpg", "crop": f"{stem}_crop.png",
                    })
    return jobs


def _box_px(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """A float box as whole pixels inside the image, at least one pixel wide and high."""
    x0 = min(width - 1, max(0, int(math.floor(box[0]))))
    y0 = min(height - 1, max(0, int(math.floor(box[1]))))
    x1 = max(x0 + 1, min(width, int(math.ceil(box[2]))))
    y1 = max(y0 + 1, min(height, int(math.ceil(box[3]))))
    return x0, y0, x1, y1


def _fit(im: Image.Image, longest: int) -> Image.Image:
    """``im`` resized so its longer side is ``longest`` px (up or down), aspect kept."""
    w, h = im.size
    scale = longest / max(w, h)
    return im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)


def thumbnail(im: Image.Image) -> tuple[Image.Image, float]:
    """``im`` with its longer side at most ``FULL_SIZE`` px, and the scale applied."""
    w, h = im.size
    scale = min(1.0, FULL_SIZE / max(w, h))
    if scale == 1.0:
        return im, scale
    return im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC), scale


def marked_image(thumb: Image.Image, scale: float, box: Sequence[int],
                 seen: Sequence[float] | None = None) -> Image.Image:
    """A copy of a :func:`thumbnail` with ``box`` (image pixels) outlined, and the network's view if given."""
    small = thumb.copy()
    draw = ImageDraw.Draw(small)
    sw, sh = small.size
    if seen is not None and (seen[2] - seen[0] < sw / scale - 1 or seen[3] - seen[1] < sh / scale - 1):
        s = [v * scale for v in seen]
        draw.rectangle([s[0], s[1], min(sw - 1, s[2]), min(sh - 1, s[3])], outline=VIEW_COLOUR, width=1)
    b = [v * scale for v in box]
    line = max(2, round(max(sw, sh) / 120))
    rect = [b[0], b[1], max(b[0], min(sw - 1, b[2] - 1)), max(b[1], min(sh - 1, b[3] - 1))]
    draw.rectangle([rect[0] - 1, rect[1] - 1, rect[2] + 1, rect[3] + 1], outline=(0, 0, 0), width=line + 2)
    draw.rectangle(rect, outline=BOX_COLOUR, width=line)
    return small


def _jpeg_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return buf.getvalue()


class _WriteJobs(torch.utils.data.Dataset):
    """One item per source image: load it once, write the full image and crop of each of its examples."""

    def __init__(self, root: Path, size: int, layer_dirs: dict[str, Path], jobs: list[tuple[str, list[dict]]]) -> None:
        self.root, self.size, self.layer_dirs, self.jobs = root, size, layer_dirs, jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> list[dict[str, Any]]:
        source, entries = self.jobs[i]
        im, (w, h) = open_rgb(self.root / source)
        view = view_of(w, h, self.size)
        thumb, scale = thumbnail(im)
        out = []
        for e in entries:
            box = _box_px(view.to_source(e["input_box"]), w, h)
            layer_dir = self.layer_dirs[e["layer"]]
            atomic_write_bytes(safe_join(layer_dir, e["full"]), _jpeg_bytes(marked_image(thumb, scale, box, view.seen)))
            crop = _fit(im.crop(box), CROP_SIZE)
            atomic_write_bytes(safe_join(layer_dir, e["crop"]), png_bytes(np.asarray(crop)))
            out.append({**e, "box": list(box), "width": w, "height": h, "source": source})
        return out


def write_examples(
    result: ExamplesResult,
    out_dir: str | Path,
    *,
    workers: int = 0,
    model_name: str | None = None,
) -> dict[str, Path]:
    """Write every layer's examples under ``out_dir/examples/<layer>/``; return ``{layer: examples.json path}``.

    Per example the whole image with the receptive field marked (JPEG) and the crop (PNG);
    then ``index.html`` and, last, ``examples.json`` (an old one is removed first, so it
    never describes half-replaced files). Images are written by ``workers`` processes.
    """
    out = prepare_output_dir(Path(out_dir))
    base = out / EXAMPLES_DIR
    base.mkdir(exist_ok=True)
    layer_dirs = {name: safe_join(base, sanitize_filename(name)) for name in result.layers}
    for name, lx in result.layers.items():
        d = layer_dirs[name]
        d.mkdir(exist_ok=True)
        safe_join(d, EXAMPLES_JSON).unlink(missing_ok=True)
        for kind, ranking in (("top", lx.top), ("bottom", lx.bottom)):
            if ranking is not None:
                for unit in range(lx.units):
                    if int(ranking.index[unit, 0]) != EMPTY:
                        safe_join(d, unit_dir(unit)).mkdir(exist_ok=True)
    jobs = sorted(_plan(result).items())
    written: list[dict[str, Any]] = []
    loader = torch.utils.data.DataLoader(
        _WriteJobs(result.root, result.info.input_size, layer_dirs, jobs), batch_size=None, num_workers=workers,
    )
    for entries in loader:
        written.extend(entries)
    by_layer: dict[str, dict[str, dict[str, list]]] = {name: {} for name in result.layers}
    for e in sorted(written, key=lambda e: (e["layer"], e["unit"], e["kind"] != "top", e["rank"])):
        unit = by_layer[e["layer"]].setdefault(str(e["unit"]), {})
        unit.setdefault(e["kind"], []).append({
            "rank": e["rank"], "source": e["source"], "activation": e["activation"], "x": e["x"], "y": e["y"],
            "full": e["full"], "crop": e["crop"], "box": e["box"], "width": e["width"], "height": e["height"],
        })
    paths = {}
    for name, lx in result.layers.items():
        doc = _layer_document(result, lx, by_layer[name], model_name)
        atomic_write_text(safe_join(layer_dirs[name], INDEX_HTML), layer_page(doc))
        atomic_write_json(safe_join(layer_dirs[name], EXAMPLES_JSON), doc)
        paths[name] = layer_dirs[name] / EXAMPLES_JSON
    atomic_write_text(safe_join(base, INDEX_HTML), examples_index(base))
    return paths


def _layer_document(result: ExamplesResult, lx: LayerExamples, units: dict[str, Any],
                    model_name: str | None) -> dict[str, Any]:
    """The ``examples.json`` of one layer."""
    rf = dataclasses.asdict(lx.rf) if lx.rf is not None else None
    return {
        "featviz": __version__,
        "layer": lx.layer,
        "model": model_name or result.info.name,
        "k": result.k,
        "images_root": str(result.root.resolve()),
        "images_seen": result.images_seen,
        "files": result.files,
        "unreadable": result.unreadable,
        "unreadable_files": result.unreadable_files,
        "input_size": result.info.input_size,
        "activation_shape": list(lx.shape),
        "receptive_field": rf,
        "units": units,
    }


# ---------------------------------------------------------------- HTML

_CSS = """body{font:14px system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
h1{font-size:1.3em}h2{font-size:1.05em;margin:1.2em 0 .3em}
.row{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start}.kind{width:4.5em;font-size:.85em;color:#666}
figure{margin:0;text-align:center;font-size:.75em;color:#444}figure img{display:block;width:128px;height:128px;
object-fit:contain;background:#eee;border:1px solid #ccc}a:hover img{border-color:#06c}
.meta{color:#555}nav a{margin-right:.6em}"""


def layer_page(doc: dict[str, Any]) -> str:
    """A standalone HTML page of one layer's examples: per unit its crops, each linking to the whole image."""
    e = html.escape
    rf = doc.get("receptive_field")
    rf_text = (f"crop {rf['size']:.0f} px of the {doc['input_size']} px input "
               f"({rf['mass']:.0%} of the input gradient; theoretical receptive field {rf['full']:.0f} px)"
               if rf else "no spatial map: whole image")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(doc['model'])} {e(doc['layer'])}: dataset examples</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(doc['model'])} &middot; {e(doc['layer'])}: dataset examples</h1>",
        f"<p class='meta'>top {doc['k']} of {doc['images_seen']} images per unit (maximum over space); "
        f"{doc['unreadable']} unreadable file(s) skipped; {e(rf_text)}. Click a crop for the whole image.</p>",
        "<nav>" + "".join(f"<a href='#u{u}'>{u}</a>" for u in doc["units"]) + "</nav>",
    ]
    for unit, kinds in doc["units"].items():
        parts.append(f"<section id='u{unit}'><h2>unit {unit}</h2>")
        for kind in ("top", "bottom"):
            if kind not in kinds:
                continue
            parts.append(f"<div class='row'><div class='kind'>{kind}</div>")
            for ex in kinds[kind]:
                title = e(f"{ex['source']} at ({ex['x']}, {ex['y']}): {ex['activation']:.4g}")
                parts.append(
                    f"<figure><a href='{e(ex['full'])}' title='{title}'><img loading='lazy' src='{e(ex['crop'])}' "
                    f"alt='{title}'></a>{ex['activation']:.3g}</figure>"
                )
            parts.append("</div>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def examples_index(base: Path) -> str:
    """``OUT/examples/index.html``: links to every layer page found under ``base``."""
    rows = []
    for path in sorted(Path(base).glob(f"*/{EXAMPLES_JSON}")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rows.append(f"<li><a href='{html.escape(path.parent.name)}/{INDEX_HTML}'>{html.escape(str(doc.get('layer')))}"
                    f"</a> &middot; {len(doc.get('units', {}))} units, {doc.get('images_seen')} images</li>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>dataset examples</title>"
            f"<style>{_CSS}</style></head><body><h1>Dataset examples</h1><ul>{''.join(rows)}</ul></body></html>\n")


# ---------------------------------------------------------------- from a spec


def spec_layers(spec: Spec) -> list[str]:
    """The layers a spec's examples are for: ``dataset.layers``, else every objective term's layer."""
    if spec.dataset.layers:
        return list(spec.dataset.layers)
    layers: list[str] = []
    for term in spec.objective:  # a sweep's term may name a list of layers
        layers += term.layer if isinstance(term.layer, list) else [term.layer or OUTPUT]
    return list(dict.fromkeys(layers))


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
    identity = dataclasses.asdict(spec.model)
    root = Path(ds.images)
    fp = _fingerprint(info, identity, layers, ds.k, ds.bottom, root, ds.rf_mass)
    ckpt = checkpoint_path(out, fp)
    if restart:
        ckpt.unlink(missing_ok=True)
    result = collect(
        model, info, layers, root, k=ds.k, bottom=ds.bottom, batch_size=ds.batch_size, workers=ds.workers,
        device=device, autocast_dtype=dtype, rf_mass=ds.rf_mass, checkpoint=ckpt,
        checkpoint_every=ds.checkpoint_every, identity=identity, progress=progress, notify=notify,
    )
    t0 = time.perf_counter()
    paths = write_examples(result, out, workers=ds.workers, model_name=spec.model.name)
    result.timings["write_s"] = round(time.perf_counter() - t0, 3)
    return result, paths


__all__ = [
    "ExamplesResult", "LayerExamples", "Ranking", "ReceptiveField", "View", "collect",
    "count_images", "iter_images", "load_for_network", "receptive_field", "run_examples", "spec_layers",
    "view_of", "write_examples",
]
