"""featviz_cli/params/grid.py: low-resolution parts shared across a 2-D grid of cells."""
from __future__ import annotations

import torch

from featviz_cli.params import build_param
from featviz_cli.params.grid import SharedGrid, spread


def test_spread_interpolates_across_the_cells() -> None:
    t = torch.zeros(2, 2, 3, 1, 1)
    t[0, 0], t[0, 1], t[1, 0], t[1, 1] = 0.0, 1.0, 2.0, 3.0
    out = spread(t, 3, 3, 4)  # corners are the parts, the centre their mean
    assert out.shape == (9, 3, 4, 4)
    assert torch.allclose(out[0], torch.zeros(3, 4, 4)) and torch.allclose(out[8], torch.full((3, 4, 4), 3.0))
    assert torch.allclose(out[4], torch.full((3, 4, 4), 1.5)) and torch.allclose(out[1], torch.full((3, 4, 4), 0.5))
    assert torch.allclose(spread(torch.ones(1, 1, 3, 2, 2), 2, 3, 4), torch.ones(6, 3, 4, 4))


def test_neighbouring_cells_start_closer_than_distant_ones() -> None:
    g = torch.Generator().manual_seed(0)
    base = build_param("pixel", {"size": 16, "sd": 0.01, "decorrelate": True, "output": "sigmoid"}, 36, g, torch.device("cpu"))
    grid = SharedGrid(base, 6, 6, 16, sd=0.5, generator=g, device=torch.device("cpu"))
    raw = grid.raw()
    near = (raw[0] - raw[1]).norm()
    far = (raw[0] - raw[35]).norm()
    assert raw.shape == (36, 3, 16, 16) and near < far
    assert len(grid.params) == len(base.params) + 6 and all(p.requires_grad for p in grid.shared)
