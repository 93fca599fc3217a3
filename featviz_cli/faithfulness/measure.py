"""The numbers of one unit's faithfulness, from activations already computed (no model, no files).

(a) **activation ratio**: the render's activation of its unit (maximum over space, the statistic the
dataset examples are ranked by) divided by that of the unit's strongest dataset example.

(b) **path score**, at each earlier layer: every image's activations are pooled over space into one
vector, centred by the mean vector of a baseline of random photos from the same folder, each channel
divided by its spread over the photos (at least the median channel's: see ``standardizer``), and
compared by cosine similarity with the unit's top dataset examples:

- ``render``: the render's mean similarity to the top examples;
- ``top``: the top examples' mean similarity to each other (how alike the unit's natural inputs look);
- ``random``: random photos' mean similarity to the top examples (how alike any photo looks);
- ``score = (render - random) / (top - random)``: 0 where the render is processed no more like the
  unit's natural inputs than a random photo is, 1 where it is as close as they are to each other.

The unit's path score is the mean over the layers that have one; a render whose path score is below
``THRESHOLD`` is flagged as off-distribution.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch

#: A render whose path score is below this is flagged: it is not even halfway, from random photos,
#: to how alike the unit's own top examples are processed (see docs/microscope.md).
THRESHOLD = 0.5
_EPS = 1e-6  # a layer where the top examples are no closer to each other than random photos has no score


def pooled(act: torch.Tensor) -> torch.Tensor:
    """Activations ``(B, C, H, W)``, ``(B, T, C)`` or ``(B, C)`` as one vector per image, ``(B, C)``, in float64."""
    from ..hooks import channel_view

    return channel_view(act.detach()).double().mean(2).cpu()


def unit_value(act: torch.Tensor, unit: int) -> torch.Tensor:
    """Each image's activation of ``unit``: its maximum over space (as the dataset examples rank), ``(B,)``."""
    from ..hooks import channel_view

    return channel_view(act.detach())[:, unit].double().amax(1).cpu()


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    n = x.norm(dim=1, keepdim=True)
    return torch.where(n > 0, x / n.clamp_min(1e-30), torch.zeros_like(x))


def standardizer(top: torch.Tensor, random: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The centre (random photos' mean) and per-channel scale (the photos' std, floored at the median
    channel's, so that a channel photos hardly use cannot dominate) that put channels on the photos' scale."""
    both = torch.cat([top, random])
    std = both.std(0, unbiased=False) if len(both) > 1 else torch.ones_like(both[0])
    median = float(torch.quantile(std, 0.5))
    floor = median if median > 0 else 1.0
    return random.mean(0), std.clamp_min(floor)


def similarities(render: torch.Tensor, top: torch.Tensor, random: torch.Tensor,
                 centre: torch.Tensor, scale: torch.Tensor | None = None) -> dict[str, float | None]:
    """At one layer: the render's, the top examples' and random photos' mean cosine similarity to the top
    examples (vectors centred by ``centre``, divided by ``scale``), and the score.
    ``render (C,)``, ``top (K, C)``, ``random (R, C)``."""
    s = scale if scale is not None else torch.ones_like(centre)
    t = _unit_rows((top - centre) / s)
    r = _unit_rows(((render - centre) / s)[None])[0]
    rnd = _unit_rows((random - centre) / s)
    k = len(t)
    render_sim = float((t @ r).mean())
    pair = t @ t.T
    top_sim = float((pair.sum() - pair.diagonal().sum()) / (k * (k - 1))) if k > 1 else None
    random_sim = float((rnd @ t.T).mean()) if len(rnd) else None
    score = None
    if top_sim is not None and random_sim is not None and top_sim - random_sim > _EPS:
        score = (render_sim - random_sim) / (top_sim - random_sim)
    return {"render": render_sim, "top": top_sim, "random": random_sim, "score": score}


def image_faithfulness(activation: float, top_activation: float, layers: Sequence[str],
                       render: dict[str, torch.Tensor], top: dict[str, torch.Tensor],
                       random: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One render image's numbers: activation, ratio, the per-layer similarities and the path score."""
    rows = [{"layer": name, **similarities(render[name], top[name], random[name], *standardizer(top[name], random[name]))}
            for name in layers]
    scores = [row["score"] for row in rows if row["score"] is not None]
    ratio = activation / top_activation if top_activation > 0 and math.isfinite(activation) else None
    return {"activation": activation, "top_activation": top_activation, "ratio": ratio,
            "path": sum(scores) / len(scores) if scores else None, "layers": rows}


def unit_faithfulness(images: list[dict[str, Any]], threshold: float = THRESHOLD) -> dict[str, Any]:
    """A unit's numbers from those of its render images (K for diverse renders): their means, the flag."""
    first = images[0]
    mean = _mean if len(images) > 1 else (lambda values: values[0])
    ratios = [im["ratio"] for im in images if im["ratio"] is not None]
    paths = [im["path"] for im in images if im["path"] is not None]
    rows = []
    for j, row in enumerate(first["layers"]):
        merged = {"layer": row["layer"]}
        for key in ("render", "top", "random", "score"):
            values = [im["layers"][j][key] for im in images if im["layers"][j][key] is not None]
            merged[key] = mean(values) if values else None
        rows.append(merged)
    path = mean(paths) if paths else None
    result = {"activation": mean([im["activation"] for im in images]), "top_activation": first["top_activation"],
              "ratio": mean(ratios) if ratios else None, "path": path,
              "flagged": path is not None and path < threshold, "threshold": threshold, "layers": rows}
    if len(images) > 1:
        result["images"] = [{k: im[k] for k in ("activation", "ratio", "path")} for im in images]
    return result


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def path_layers(names: Sequence[str], types: dict[str, str], shapes: dict[str, Any], layer: str,
                count: int = 4) -> list[str]:
    """Up to ``count`` layers on the way to ``layer`` to compare at, evenly spaced, the last one before it.

    ``names`` are the model's modules in definition order. The candidates are the earlier modules of
    the same type (``_blocks.0`` .. ``_blocks.4`` for ``_blocks.5``), else every earlier module with a
    spatial map; neither the layer's own parts nor its containers count.
    """
    if layer not in names:  # the output: every module with a map
        before = [n for n in names if _spatial(shapes.get(n))]
    else:
        at = names.index(layer)
        before = [n for n in names[:at] if not layer.startswith(n + ".") and shapes.get(n) is not None]
    same = [n for n in before if types.get(n) == types.get(layer)]
    pool = same or [n for n in before if _spatial(shapes.get(n))]
    if len(pool) <= count:
        return pool
    picks = sorted({round(i * (len(pool) - 1) / (count - 1)) for i in range(count)}) if count > 1 else [len(pool) - 1]
    return [pool[i] for i in picks]


def _spatial(shape: Any) -> bool:
    return isinstance(shape, tuple) and len(shape) in (2, 3) and all(int(s) > 1 for s in shape)


__all__ = ["THRESHOLD", "image_faithfulness", "path_layers", "pooled", "similarities", "unit_faithfulness",
           "unit_value"]
