"""The pass: stream a folder of images through the network truncated at the layer(s) and rank them.

Batches are decoded by DataLoader worker processes (:class:`~.dataset.ImageChunks`) with
the model's own preprocessing; for every unit the pass keeps the top-k images by the unit's
maximum over space (and optionally the bottom-k by its minimum), with the position of that
extreme (:mod:`.ranking`). It checkpoints its state every N images and resumes after a kill
(:mod:`.checkpoint`); unreadable files are counted and listed, never fatal.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from ..directions.matrix import check_width
from ..engine import Progress
from ..errors import SpecError
from ..hooks import OUTPUT, channel_view, forward_to, resolve_layer
from ..images import IMAGE_SUFFIXES
from ..models import ModelInfo
from ..models.preprocess import Preprocess
from .checkpoint import CHAIN_START, PassState, chain_hash, load_checkpoint, pass_fingerprint, save_checkpoint
from .dataset import ImageChunks, count_images
from .ranking import Ranking, extremes
from .receptive_field import ReceptiveField, receptive_field
from .stats import Stats

MAX_LISTED_UNREADABLE = 1000  # unreadable files listed by name (all are counted)

Notify = Callable[[str], None]


@dataclass
class LayerExamples:
    """One layer's result: its rankings, activation shape (without batch) and receptive field."""

    layer: str
    shape: tuple[int, ...]
    top: Ranking
    bottom: Ranking | None
    rf: ReceptiveField | None
    stats: Stats | None = None  # every image's maximum over space, per unit (None: not recorded)
    #: Where the units are the rows of a dictionary: its file, sha256 and rows (for examples.json).
    basis: dict[str, Any] | None = None

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
    repaired: dict[str, str] = field(default_factory=dict)  # set by run_examples: file under OUT -> what was wrong


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
    bases: dict[str, Basis] | None = None,
) -> ExamplesResult:
    """Stream the images under ``images`` through ``model`` and rank them for every unit of ``layers``.

    The model is put in eval mode and channels-last memory format. With ``checkpoint`` (a file
    path) the state is saved every ``checkpoint_every`` images and at the end, and a pass that
    finds its checkpoint resumes from it. ``identity`` describes the model for that check
    (default: its name). ``progress(done, total, images_per_s)``; ``notify`` gets one-line
    messages (resuming). ``bases`` maps a layer to a dictionary of directions: its units are
    then the rows, ranked by the projection of the activations onto each (maximum over space).
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
    bases = bases or {}
    shapes = _layer_shapes(model, info, layers, device, bases)
    rfs = {name: receptive_field(model, info, name, mass=rf_mass, device=device)
           if name != OUTPUT and len(shapes[name]) == 3 else None for name in layers}
    t_rf = time.perf_counter() - t0
    fingerprint = pass_fingerprint(info, identity or {"name": info.name}, layers, k, bottom, root, rf_mass)
    state = load_checkpoint(checkpoint, fingerprint, root, shapes) if checkpoint else None
    resumed_from = state.done if state else 0
    if state is None:
        empty = {name: (Ranking.empty(shapes[name][0], k, True),
                        Ranking.empty(shapes[name][0], k, False) if bottom else None) for name in layers}
        state = PassState(0, CHAIN_START, 0, 0, [], empty, {}, {name: Stats.empty(shapes[name][0]) for name in layers})
    elif notify is not None:
        notify(f"resuming from {checkpoint}: {state.done} of {total} images already done")
        if any(state.stats.get(name) is None for name in layers):
            notify("the checkpoint was saved by an older featviz: no activation histograms this time "
                   "(rerun with --restart to get them)")
    if checkpoint:
        Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
    model = model.to(memory_format=torch.channels_last)  # about 1.4x faster forwards on CPU too
    pre = Preprocess(info).to(device)
    last_saved, t_pass, started = state.done, time.perf_counter(), state.done
    loader = torch.utils.data.DataLoader(
        ImageChunks(root, state.done, batch_size, info.input_size), batch_size=None, num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    try:
        for chunk in loader:
            state = _step(state, chunk, model, pre, layers, device, autocast_dtype, bases)
            if checkpoint and state.done - last_saved >= checkpoint_every:
                save_checkpoint(checkpoint, fingerprint, state, shapes)
                last_saved = state.done
            if progress is not None:
                progress(state.done, max(total, state.done),
                         (state.done - started) / max(1e-9, time.perf_counter() - t_pass))
    except KeyboardInterrupt:
        if checkpoint:
            save_checkpoint(checkpoint, fingerprint, state, shapes)
        raise
    if checkpoint and (state.done != last_saved or not checkpoint.exists()):
        save_checkpoint(checkpoint, fingerprint, state, shapes)
    t_done = time.perf_counter() - t_pass
    result_layers = {
        name: LayerExamples(name, shapes[name], top, bot, rfs[name], stats=state.stats.get(name),
                            basis=bases[name].about if name in bases else None)
        for name, (top, bot) in state.rankings.items()
    }
    return ExamplesResult(
        layers=result_layers, paths=state.paths, root=root, info=info, k=k, images_seen=state.seen,
        files=state.done, unreadable=state.unreadable, unreadable_files=state.unreadable_files,
        resumed_from=resumed_from,
        timings={"receptive_field_s": round(t_rf, 3), "pass_s": round(t_done, 3),
                 "images_per_s": round((state.done - started) / max(1e-9, t_done), 2)},
    )


@dataclass(frozen=True)
class Basis:
    """A dictionary whose rows are the units ranked at a layer: ``matrix`` (N, C), ``about`` for examples.json."""

    matrix: torch.Tensor
    about: dict[str, Any]
    field: str = "objective.vector_file"

    def project(self, act: torch.Tensor) -> torch.Tensor:
        """Activations (B, C, ...) as (B, N, ...): the dot product with each row at every position."""
        flat = channel_view(act).float()  # (B, C, S)
        out = torch.einsum("bcs,nc->bns", flat, self.matrix.to(flat.device, flat.dtype))
        return out.view(act.shape[0], -1, *act.shape[2:]) if act.dim() == 4 else out


def _layer_shapes(model: nn.Module, info: ModelInfo, layers: list[str], device: torch.device,
                  bases: dict[str, Basis]) -> dict[str, tuple[int, ...]]:
    """Each layer's activation shape without the batch dimension, as ``(units, H, W)``/``(units, S)``."""
    x = torch.zeros(1, 3, info.input_size, info.input_size, device=device)
    with torch.no_grad():
        acts = forward_to(model, Preprocess(info).to(device)(x), layers)
    shapes = {}
    for name in layers:
        if name in bases:
            b = bases[name]
            check_width(b.matrix, channel_view(acts[name]).shape[1], name, b.about["file"], b.field)
        act = bases[name].project(acts[name]) if name in bases else acts[name]
        units = channel_view(act).shape[1]
        shapes[name] = (units, *act.shape[2:]) if act.dim() == 4 else (units, channel_view(act).shape[2])
    return shapes


def _step(state: PassState, chunk: dict[str, Any], model: nn.Module, pre: nn.Module, layers: list[str],
          device: torch.device, autocast_dtype: torch.dtype | None, bases: dict[str, Basis]) -> PassState:
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
    stats = dict(state.stats)
    new_paths = dict(state.paths)
    if bool(ok.any()):
        x = chunk["images"][ok].to(device, non_blocking=True).float().div_(255)
        ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            acts = forward_to(model, pre(x).contiguous(memory_format=torch.channels_last), layers)
        idx = index[ok]
        for name in layers:
            top, bot = rankings[name]
            act = bases[name].project(acts[name]) if name in bases else acts[name]
            values, pos = extremes(act, True)
            top = top.merge(values, pos, idx)
            if stats.get(name) is not None:
                stats[name] = stats[name].add(values)
            if bot is not None:
                values, pos = extremes(act, False)
                bot = bot.merge(values, pos, idx)
            rankings[name] = (top, bot)
        for i in idx.tolist():
            new_paths[i] = paths[i - state.done]
        kept = set(torch.cat([r.index.flatten() for pair in rankings.values() for r in pair if r is not None]).tolist())
        new_paths = {i: p for i, p in new_paths.items() if i in kept}
    return PassState(
        done=state.done + len(paths), chain=chain_hash(state.chain, paths), seen=state.seen + int(ok.sum()),
        unreadable=state.unreadable + int((~ok).sum()), unreadable_files=unreadable_files,
        rankings=rankings, paths=new_paths, stats=stats,
    )
