"""A bounded sample of a layer's activation vectors over a folder of images, streamed and resumable.

Every spatial position of every image (and of ``crops`` random crops of it, for small folders)
gets a random key; the sample keeps the ``size`` positions with the largest keys (reservoir
sampling, Efraimidis-Spirakis: key = log(u) / w). With uniform weights that is a uniform
random sample; with ``klass`` the weight of a position is its attribution to that class
(activation times the gradient of the class logit, summed over channels; positions with none
are never drawn), so the sample holds the positions most attributed to the class. Memory is
the sample plus one batch, whatever the size of the folder. Each image's keys come from its
own seeded generator, so the sample does not depend on batch boundaries or on resuming.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import SpecError
from ..examples.checkpoint import CHAIN_START, chain_hash
from ..examples.dataset import ImageChunks
from ..hooks import OUTPUT, forward_to, resolve_layer
from ..images import IMAGE_SUFFIXES, iter_images
from ..models import ModelInfo
from ..models.preprocess import Preprocess
from ..outputs import atomic_write_bytes

Progress = Callable[[int, int, float], None]
FORMAT = 1


@dataclass
class Sample:
    """The sampled activation vectors (k, C), their keys, and where each came from: (image, crop, y, x)."""

    vectors: torch.Tensor
    keys: torch.Tensor
    where: torch.Tensor
    paths: dict[int, str] = field(default_factory=dict)
    done: int = 0  # files of the folder processed
    positions: int = 0  # positions seen (with a positive weight)
    chain: str = CHAIN_START
    map_shape: tuple[int, int] = (1, 1)

    @classmethod
    def empty(cls, channels: int) -> "Sample":
        """A sample with nothing in it yet."""
        return cls(torch.zeros(0, channels), torch.zeros(0), torch.zeros(0, 4, dtype=torch.long))

    def merge(self, vectors: torch.Tensor, keys: torch.Tensor, where: torch.Tensor, size: int) -> "Sample":
        """The sample with new candidates added, keeping the ``size`` largest keys (ties: the earlier position)."""
        v, k, w = torch.cat([self.vectors, vectors]), torch.cat([self.keys, keys]), torch.cat([self.where, where])
        keep = torch.isfinite(k)
        v, k, w = v[keep], k[keep], w[keep]
        if k.numel() > size:
            order = torch.argsort(k, descending=True, stable=True)[:size]
            v, k, w = v[order], k[order], w[order]
        return Sample(v, k, w, self.paths, self.done, self.positions, self.chain, self.map_shape)


def _crops(x: torch.Tensor, image_index: int, crops: int, seed: int) -> torch.Tensor:
    """``crops`` random resized crops (35-100 % of the side, random flips) of each image of ``x`` (B, 3, S, S)."""
    if crops == 0:
        return x[:0]
    s = x.shape[-1]
    out = []
    for b in range(x.shape[0]):
        g = torch.Generator().manual_seed(seed * 7919 + (image_index + b) * 104729 + 1)
        for _ in range(crops):
            side = max(2, int(s * (0.35 + 0.65 * float(torch.rand((), generator=g)))))
            top, left = (int(torch.randint(0, s - side + 1, (), generator=g)) for _ in range(2))
            c = x[b:b + 1, :, top:top + side, left:left + side]
            c = F.interpolate(c, size=(s, s), mode="bilinear", align_corners=False)
            out.append(c.flip(-1) if bool(torch.rand((), generator=g) < 0.5) else c)
    return torch.cat(out)


def _keys(weights: torch.Tensor, first_image: int, per_image: int, seed: int) -> torch.Tensor:
    """Reservoir keys log(u) / w for (images * per_image) weights, u from each image's own generator."""
    u = torch.cat([torch.rand(per_image, generator=torch.Generator().manual_seed(seed * 1_000_003 + first_image + i),
                              dtype=torch.float64) for i in range(weights.numel() // per_image)])
    w = weights.double()
    keys = torch.where(w > 0, torch.log(u.clamp_min(1e-300)) / w.clamp_min(1e-300), torch.tensor(-math.inf,
                       dtype=torch.float64))
    return keys


def _activations(model: nn.Module, pre: nn.Module, x: torch.Tensor, layer: str, klass: int | None,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's activations (B, C, H, W) and each position's weight (B, H, W): 1, or the attribution."""
    if klass is None:
        with torch.no_grad():
            a = forward_to(model, pre(x), [layer])[layer].float()
        return a, torch.ones(a.shape[0], *a.shape[2:])
    with torch.enable_grad():
        acts = forward_to(model, pre(x.requires_grad_(True)), [layer, OUTPUT])
        a, logits = acts[layer], acts[OUTPUT]
        grad, = torch.autograd.grad(logits.flatten(1)[:, klass].sum(), a)
    return a.detach().float(), (a.detach() * grad).sum(1).float().clamp_min(0)


def check_folder(images: str | Path, field: str = "--images") -> int:
    """The number of images under ``images``; ``SpecError`` naming ``field`` if it is no folder, holds none,
    or none of them can be read (the first readable one ends the search).

    The passes call it before they create their output directory, so bad input writes nothing.
    """
    from ..examples.dataset import open_rgb

    root = Path(images)
    if not root.is_dir():
        raise SpecError(field, f"{root}: not a folder; give the folder of images.")
    total, first_error = 0, ""
    readable = False
    for rel in iter_images(root):
        total += 1
        if readable:
            continue
        try:
            open_rgb(root / rel, draft_for=64)
            readable = True
        except Exception as e:  # noqa: BLE001 - any unreadable file counts as not an image
            first_error = first_error or f"{rel}: {type(e).__name__}: {e}".splitlines()[0][:200]
    if total == 0:
        raise SpecError(field, f"{root}: no {'/'.join(IMAGE_SUFFIXES)} files in it or below; check the path.")
    if not readable:
        raise SpecError(field, f"{root}: none of its {total} image files can be read (first: {first_error}); "
                        "give a folder of JPEG, PNG or WebP images.")
    return total


def check_map(shape: Sequence[int], layer: str, field: str = "objective.layer") -> tuple[int, int, int]:
    """(C, H, W) of a layer whose activations for a batch have ``shape``; ``SpecError`` naming ``field`` unless
    they are a spatial map of more than one position (logits, a pooled vector and a 1 x 1 map have none)."""
    if len(shape) != 4 or int(shape[2]) * int(shape[3]) < 2:
        raise SpecError(field, f"layer {layer!r} has no spatial map (its activations are {tuple(shape[1:])}); "
                        "choose a convolutional layer before the pooling ('featviz layers MODEL' lists the shapes).")
    return int(shape[1]), int(shape[2]), int(shape[3])


def probe_layer(model: nn.Module, info: ModelInfo, layer: str, field: str = "objective.layer") -> torch.Tensor:
    """The activations (2, C, H, W) of ``layer`` for a grey and a seeded noise image at the network's input
    size, once the layer is known to exist and to have a spatial map (``SpecError`` naming ``field``).

    The passes call it before they write anything; the noise image shows whether the layer can go negative.
    """
    resolve_layer(model, layer, field=field)
    s = info.input_size
    x = torch.cat([torch.full((1, 3, s, s), 0.5), torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(0))])
    param = next(iter(model.parameters()), None)
    with torch.no_grad():
        a = forward_to(model.eval(), Preprocess(info)(x).to(param.device if param is not None else "cpu"),
                       [layer])[layer]
    check_map(a.shape, layer, field)
    return a.float().cpu()


def sample_activations(model: nn.Module, info: ModelInfo, layer: str, images: str | Path, *, size: int = 20000,
                       seed: int = 0, crops: int = 0, klass: int | None = None, batch_size: int = 16,
                       workers: int = 0, checkpoint: Path | None = None, checkpoint_every: int = 500,
                       identity: dict[str, Any] | None = None, progress: Progress | None = None,
                       notify: Callable[[str], None] | None = None) -> Sample:
    """A sample of at most ``size`` activation vectors of ``layer`` over the images under ``images``.

    ``crops`` adds that many random crops of each image; ``klass`` weights positions by their
    attribution to that class. With ``checkpoint`` the state is saved every ``checkpoint_every``
    images and a pass that finds it resumes. ``progress(done, total, images_per_s)``.
    """
    import time

    root = Path(images)
    total = check_folder(root)
    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    probe = probe_layer(model, info, layer, field="layer")
    pre = Preprocess(info)
    fingerprint = {"format": FORMAT, "model": identity or {"name": info.name}, "input_size": info.input_size,
                   "layer": layer, "size": size, "seed": seed, "crops": crops, "class": klass,
                   "images": str(root.resolve())}
    state = _load(checkpoint, fingerprint, root) if checkpoint else None
    if state is not None and notify is not None:
        notify(f"resuming from {checkpoint}: {state.done} of {total} images already sampled")
    state = state or Sample.empty(probe.shape[1])
    state.map_shape = (int(probe.shape[2]), int(probe.shape[3]))
    loader = torch.utils.data.DataLoader(ImageChunks(root, state.done, batch_size, info.input_size), batch_size=None,
                                         num_workers=workers)
    last_saved, started, t0 = state.done, state.done, time.perf_counter()
    skipped: list[str] = []
    for chunk in loader:
        skipped += [f"{p} ({e})" for p, ok, e in zip(chunk["paths"], chunk["ok"].tolist(), chunk["errors"]) if not ok]
        state = _step(state, chunk, model, pre, layer, size, seed, crops, klass)
        if checkpoint and state.done - last_saved >= checkpoint_every:
            _save(checkpoint, fingerprint, state)
            last_saved = state.done
        if progress is not None:
            progress(state.done, total, (state.done - started) / max(1e-9, time.perf_counter() - t0))
    if state.vectors.shape[0] == 0:  # before the checkpoint: an empty sample is not worth resuming
        raise SpecError("--class" if klass is not None else "--images", f"{root}: no readable image gave a "
                        "position to sample" + (f" with a positive attribution to class {klass}; choose another "
                                                "class or folder" if klass is not None else "") + ".")
    if checkpoint and (state.done != last_saved or not checkpoint.exists()):
        _save(checkpoint, fingerprint, state)
    if skipped and notify is not None:
        notify(f"{len(skipped)} unreadable image(s) skipped: " + "; ".join(skipped[:3])
               + (f"; {len(skipped) - 3} more" if len(skipped) > 3 else ""))
    return state


def _step(state: Sample, chunk: dict[str, Any], model: nn.Module, pre: nn.Module, layer: str, size: int, seed: int,
          crops: int, klass: int | None) -> Sample:
    """The sample after one chunk of images (unreadable ones skipped)."""
    ok: torch.Tensor = chunk["ok"]
    paths: list[str] = chunk["paths"]
    start = int(chunk["start"])
    out = state
    good = ok.nonzero().flatten().tolist()
    if good:
        per = 1 + crops
        x = torch.cat([torch.cat([chunk["images"][j:j + 1].float() / 255,
                                  _crops(chunk["images"][j:j + 1].float() / 255, start + j, crops, seed)])
                       for j in good])
        a_all, w_all = _activations(model, pre, x, layer, klass)
        _, c, h, wd = a_all.shape
        for n, j in enumerate(good):
            index = start + j
            a, w = a_all[n * per:(n + 1) * per], w_all[n * per:(n + 1) * per]
            vectors = a.permute(0, 2, 3, 1).reshape(-1, c)
            keys = _keys(w.flatten(), index, per * h * wd, seed)
            crop, y, xx = torch.meshgrid(torch.arange(per), torch.arange(h), torch.arange(wd), indexing="ij")
            where = torch.stack([torch.full_like(y, index), crop, y, xx], -1).reshape(-1, 4)
            out = out.merge(vectors, keys, where, size)
            out.positions += int((w > 0).sum())
            out.paths[index] = paths[j]
    kept = set(out.where[:, 0].tolist())
    out.paths = {i: p for i, p in out.paths.items() if i in kept}
    out.done = state.done + len(paths)
    out.chain = chain_hash(state.chain, paths)
    return out


def _save(path: Path, fingerprint: dict[str, Any], s: Sample) -> None:
    buf = io.BytesIO()
    torch.save({"fingerprint": fingerprint, "vectors": s.vectors, "keys": s.keys, "where": s.where, "paths": s.paths,
                "done": s.done, "positions": s.positions, "chain": s.chain}, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path, fingerprint: dict[str, Any], root: Path) -> Sample | None:
    """The saved sample; SpecError if the checkpoint is damaged, another pass's, or the folder changed."""
    if not path.exists():
        return None
    try:
        data = torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged checkpoint is reported with the fix
        raise SpecError("--images", f"{path}: cannot read the checkpoint ({type(e).__name__}); delete it "
                        "or rerun with --restart.") from None
    if data.get("fingerprint") != fingerprint:
        raise SpecError("--images", f"{path} belongs to another pass; delete it or rerun with --restart.")
    first = [rel for _, rel in zip(range(int(data["done"])), iter_images(root))]
    if len(first) != int(data["done"]) or chain_hash(CHAIN_START, first) != data["chain"]:
        raise SpecError("--images", f"{root}: the folder's files changed since {path} was saved; "
                        "rerun with --restart to start over.")
    return Sample(data["vectors"], data["keys"], data["where"], dict(data["paths"]), int(data["done"]),
                  int(data["positions"]), data["chain"])
