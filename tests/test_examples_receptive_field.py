"""Receptive fields from input gradients (featviz_cli/examples/receptive_field.py)."""
from __future__ import annotations

import torch.nn as nn

from featviz_cli.examples.receptive_field import receptive_field
from featviz_cli.models import ModelInfo


def test_receptive_field_of_known_convolutions() -> None:
    net = nn.Sequential(nn.Conv2d(3, 1, 5, padding=2), nn.Conv2d(1, 1, 3, stride=2, padding=1))
    for m in net:
        m.weight.data.fill_(1.0)
    info = ModelInfo(name="convs", input_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    rf = receptive_field(net, info, "1", mass=1.0)
    assert rf.full == 7 and rf.size == 7 and rf.stride == (2.0, 2.0) and rf.map_size == (16, 16)
    # Unit (y=8, x=8) sees input rows/cols 13..19 (5x5 then 3x3 at stride 2): centre 16.5 in pixel-centre terms.
    assert rf.box(8, 8) == (13.0, 13.0, 20.0, 20.0)
    assert rf.box(0, 0) == (0.0, 0.0, 4.0, 4.0)  # clipped at the border
    smaller = receptive_field(net, info, "1", mass=0.5)
    assert smaller.size < 7 and smaller.full == 7
    assert all(p.grad is None for p in net.parameters())


def test_receptive_field_is_none_without_a_spatial_map(tiny_model) -> None:
    model, info = tiny_model
    assert receptive_field(model, info, "fc") is None
