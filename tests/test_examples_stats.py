"""Streaming activation statistics (featviz_cli/examples/stats.py): against numpy over all values at once,
the same histogram whatever the order and batch boundaries, and a state that round-trips."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from featviz_cli.examples.stats import BINS, Stats


def _values() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    v = torch.randn(300, 4, generator=g, dtype=torch.float64) * torch.tensor([1.0, 250.0, 1e-3, 0.0], dtype=torch.float64)
    v[:, 1] += 1000.0  # far from zero
    v[:, 3] = 2.5  # every value equal
    v[7, 0] = float("nan")
    v[9, 0] = float("inf")
    return v


def _streamed(v: torch.Tensor, cuts: list[int]) -> Stats:
    s = Stats.empty(v.shape[1])
    for a, b in zip([0, *cuts], [*cuts, len(v)]):
        s = s.add(v[a:b])
    return s


def test_statistics_are_numpys_over_all_values_and_the_histogram_counts_them_on_its_grid() -> None:
    v = _values()
    s = _streamed(v, [1, 50, 51, 180])
    for u in range(v.shape[1]):
        col = v[:, u].numpy()
        col = col[np.isfinite(col)]
        got = s.unit(u)
        assert got["count"] == len(col) and got["min"] == col.min() and got["max"] == col.max()
        assert got["mean"] == pytest.approx(col.mean(), rel=1e-9, abs=1e-12)
        assert got["std"] == pytest.approx(col.std(), rel=1e-6, abs=1e-9)
        h = got["hist"]
        w, start = h["width"], h["start"]
        assert math.log2(w) == int(math.log2(w)) and start / w == int(start / w)  # powers of two, aligned
        assert len(h["counts"]) <= BINS and sum(h["counts"]) == len(col)
        ref = np.bincount(np.floor((col - start) / w).astype(int), minlength=len(h["counts"]))
        assert ref.tolist() == h["counts"]
        assert start <= col.min() < start + w and col.max() < start + w * len(h["counts"])
        if u < 3:  # the grid is the narrowest that fits: at half the width the values need more bins
            assert np.floor(col.max() / (w / 2)) - np.floor(col.min() / (w / 2)) + 1 > BINS


def test_the_histogram_is_the_same_for_any_order_and_batching() -> None:
    v = _values()
    one = _streamed(v, [])
    for order, cuts in ((torch.arange(300).flip(0), [3, 4, 200]), (torch.randperm(300, generator=torch.Generator().manual_seed(1)), list(range(5, 300, 5)))):
        other = _streamed(v[order], cuts)
        for u in range(v.shape[1]):
            a, b = one.unit(u), other.unit(u)
            assert a["hist"] == b["hist"] and a["count"] == b["count"] and a["min"] == b["min"] and a["max"] == b["max"]
            assert a["mean"] == pytest.approx(b["mean"], rel=1e-12, abs=1e-15)


def test_no_value_yet_is_none_and_the_state_round_trips() -> None:
    s = Stats.empty(2)
    assert s.unit(0) is None
    s = s.add(torch.tensor([[1.0, float("nan")], [3.0, float("nan")]]))
    assert s.unit(1) is None and s.unit(0)["count"] == 2
    back = Stats.from_state(s.state())
    assert back.unit(0) == s.unit(0)
    more = torch.tensor([[-7.0, 2.0]])
    assert back.add(more).unit(0) == s.add(more).unit(0) and back.add(more).unit(1)["count"] == 1
