"""Streaming top-k (featviz_cli/examples/ranking.py): batches merge like one sort, and memory stays k per unit."""
from __future__ import annotations

import pytest
import torch

from featviz_cli.examples.ranking import EMPTY, Ranking, extremes

from examples_fixtures import brute_top_k


@pytest.mark.parametrize("largest", [True, False])
def test_ranking_merges_batches_like_one_sort(largest: bool) -> None:
    g = torch.Generator().manual_seed(0)
    values = torch.randint(0, 5, (20, 3), generator=g).float()  # many ties
    values[4, 1] = float("nan")
    pos = torch.randint(0, 9, (20, 3), generator=g)
    expected = brute_top_k(torch.nan_to_num(values, nan=-1e9 if largest else 1e9), 4, largest)
    for splits in ([20], [7, 1, 12], [1] * 20):
        r = Ranking.empty(3, 4, largest)
        start = 0
        for n in splits:
            r = r.merge(values[start : start + n], pos[start : start + n], torch.arange(start, start + n))
            start += n
        assert torch.equal(r.index, expected)
        assert torch.equal(r.values, values[r.index, torch.arange(3)[:, None]])
        assert torch.equal(r.pos, pos[r.index, torch.arange(3)[:, None]])


def test_ranking_with_fewer_images_than_k_has_empty_slots() -> None:
    r = Ranking.empty(2, 5).merge(torch.ones(2, 2), torch.zeros(2, 2, dtype=torch.long), torch.tensor([0, 1]))
    assert r.index[:, :2].tolist() == [[0, 1], [0, 1]] and (r.index[:, 2:] == EMPTY).all()


def _state_bytes(r: Ranking) -> int:
    return sum(t.numel() * t.element_size() for t in r.state().values())


@pytest.mark.parametrize("largest", [True, False])
def test_streaming_many_more_images_than_k_keeps_k_per_unit_and_finds_the_true_top_k(largest: bool) -> None:
    images, units, k = 3000, 5, 4
    g = torch.Generator().manual_seed(1)
    values = (torch.randn(images, units, generator=g) * 10).round() / 10  # rounded: ties across batches
    pos = torch.randint(0, 49, (images, units), generator=g)
    sizes = torch.randint(1, 97, (images,), generator=g).tolist()
    r = Ranking.empty(units, k, largest)
    empty_bytes = _state_bytes(r)
    start = 0
    for n in sizes:
        if start >= images:
            break
        n = min(n, images - start)
        r = r.merge(values[start : start + n], pos[start : start + n], torch.arange(start, start + n))
        start += n
        # the state after any number of images is the same size as the empty one: (units, k) per buffer
        assert r.values.shape == r.index.shape == r.pos.shape == (units, k)
        assert _state_bytes(r) == empty_bytes
    assert start == images
    expected = brute_top_k(values, k, largest)  # the best k over all 3000 values at once
    assert torch.equal(r.index, expected)
    assert torch.equal(r.values, values[expected, torch.arange(units)[:, None]])
    assert torch.equal(r.pos, pos[expected, torch.arange(units)[:, None]])


def test_state_round_trips() -> None:
    r = Ranking.empty(2, 3, False).merge(torch.tensor([[1.0, 2.0]]), torch.tensor([[4, 5]]), torch.tensor([7]))
    back = Ranking.from_state(r.state(), False)
    assert not back.largest and all(torch.equal(a, b) for a, b in zip(back.state().values(), r.state().values()))


def test_extremes_are_per_unit_over_space() -> None:
    act = torch.zeros(2, 3, 4, 5)
    act[0, 1, 2, 3] = 7.0
    act[1, 2, 0, 1] = -3.0
    top, where = extremes(act, True)
    assert top[0].tolist() == [0.0, 7.0, 0.0] and int(where[0, 1]) == 2 * 5 + 3
    low, where = extremes(act, False)
    assert low[1].tolist() == [0.0, 0.0, -3.0] and int(where[1, 2]) == 1
