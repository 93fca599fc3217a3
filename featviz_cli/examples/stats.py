"""Streaming activation statistics per unit: count, mean, std, range and a histogram of one value per image.

The value is the unit's maximum over space (what the ranking sorts by). Memory is ``BINS`` counts per
unit whatever the number of images. The histogram's bins have a width that is a power of two and edges
on multiples of it; when a new value does not fit, the width doubles (pairs of bins merge exactly), so
the final histogram is the same for any order of the images and any batch boundaries: the narrowest
such grid, starting at the smallest value, on which every value fits into ``BINS`` bins.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

BINS = 32
MIN_EXP = -24  # the narrowest bin: 2**-24 (a unit whose every value is equal gets one bin this wide)


@dataclass
class Stats:
    """Per unit: how many finite values, their sum and sum of squares, range, and histogram (``BINS`` bins
    of width ``2**exp`` from ``offset * 2**exp``)."""

    count: torch.Tensor  # (U,) int64
    total: torch.Tensor  # (U,) float64
    squares: torch.Tensor  # (U,) float64
    low: torch.Tensor  # (U,) float64, +inf before any value
    high: torch.Tensor  # (U,) float64, -inf before any value
    exp: torch.Tensor  # (U,) int64
    offset: torch.Tensor  # (U,) int64: absolute index of bin 0
    counts: torch.Tensor  # (U, BINS) int64

    @classmethod
    def empty(cls, units: int) -> "Stats":
        """Statistics of no image yet."""
        z = torch.zeros(units, dtype=torch.float64)
        return cls(torch.zeros(units, dtype=torch.long), z.clone(), z.clone(), torch.full((units,), math.inf,
                   dtype=torch.float64), torch.full((units,), -math.inf, dtype=torch.float64),
                   torch.full((units,), MIN_EXP, dtype=torch.long), torch.zeros(units, dtype=torch.long),
                   torch.zeros(units, BINS, dtype=torch.long))

    def add(self, values: torch.Tensor) -> "Stats":
        """New statistics with a batch of values ``(B, U)`` added; NaN and infinite values are left out."""
        v = values.detach().double().cpu()
        finite = torch.isfinite(v)
        vz = torch.where(finite, v, torch.zeros_like(v))
        count = self.count + finite.sum(0)
        low = torch.minimum(self.low, torch.where(finite, v, torch.full_like(v, math.inf)).amin(0))
        high = torch.maximum(self.high, torch.where(finite, v, torch.full_like(v, -math.inf)).amax(0))
        seen = count > 0
        exp = _grid(low, high, self.exp, seen)
        lo_safe = torch.where(seen, low, torch.zeros_like(low))
        offset = _index(lo_safe, exp)
        # the old bins on the new grid (a shift of the absolute index floors, negatives too)
        old = (self.offset[:, None] + torch.arange(BINS)) >> (exp - self.exp)[:, None]
        counts = torch.zeros_like(self.counts).scatter_add_(
            1, (old - offset[:, None]).clamp(0, BINS - 1), self.counts)
        idx = (_index(vz, exp[None, :]) - offset[None, :]).clamp(0, BINS - 1)
        counts.scatter_add_(1, idx.t().contiguous(), finite.t().long().contiguous())
        return Stats(count, self.total + vz.sum(0), self.squares + (vz * vz).sum(0), low, high, exp, offset, counts)

    def unit(self, u: int) -> dict[str, Any] | None:
        """One unit's statistics as ``examples.json`` records them, or None before any value."""
        n = int(self.count[u])
        if n == 0:
            return None
        mean = float(self.total[u]) / n
        var = max(0.0, float(self.squares[u]) / n - mean * mean)
        counts = self.counts[u].tolist()
        last = max(i for i, c in enumerate(counts) if c)
        width = math.ldexp(1.0, int(self.exp[u]))
        return {"count": n, "mean": mean, "std": math.sqrt(var), "min": float(self.low[u]), "max": float(self.high[u]),
                "hist": {"start": int(self.offset[u]) * width, "width": width, "counts": counts[: last + 1]}}

    def state(self) -> dict[str, torch.Tensor]:
        """The buffers, for a checkpoint."""
        return {k: getattr(self, k) for k in ("count", "total", "squares", "low", "high", "exp", "offset", "counts")}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "Stats":
        """Statistics back from :meth:`state`."""
        return cls(**{k: state[k] for k in ("count", "total", "squares", "low", "high", "exp", "offset", "counts")})


def layer_stats(stats: Stats | None) -> dict[str, Any] | None:
    """A layer's statistics as ``examples.json`` records them: what was counted, and per unit (its number
    as text) count, mean, std, range and histogram; None where the pass did not record them."""
    if stats is None:
        return None
    units = {str(u): found for u in range(len(stats.count)) if (found := stats.unit(u)) is not None}
    return {"value": "maximum over space", "bins": BINS, "units": units}


def _index(x: torch.Tensor, exp: torch.Tensor) -> torch.Tensor:
    """The absolute bin index of ``x`` on the grid of width ``2**exp``: ``floor(x / 2**exp)`` (exact)."""
    return torch.floor(torch.ldexp(x, -exp)).long()


def _grid(low: torch.Tensor, high: torch.Tensor, exp: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """The narrowest width exponent, at least ``exp``, on which [low, high] fits into ``BINS`` bins."""
    spread = torch.where(seen, high - low, torch.zeros_like(high))
    guess = torch.floor(torch.log2(torch.clamp(spread / BINS, min=math.ldexp(1.0, MIN_EXP)))).long() - 1
    exp = torch.where(seen, torch.maximum(exp, guess), exp)
    lo = torch.where(seen, low, torch.zeros_like(low))
    hi = torch.where(seen, high, torch.zeros_like(high))
    while True:
        wide = seen & (_index(hi, exp) - _index(lo, exp) + 1 > BINS)
        if not bool(wide.any()):
            return exp
        exp = exp + wide.long()
