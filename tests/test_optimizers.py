"""optimizers.py: adam, sgd, sign (L-infinity) and nadam (each in a render: test_engine)."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from featviz_cli.config import parse_spec
from featviz_cli.errors import SpecError
from featviz_cli.optimizers import OPTIMIZERS, SignDescent, make_optimizer


def test_sign_step_moves_every_parameter_by_lr() -> None:
    p = torch.tensor([1.0, 1.0, 1.0], requires_grad=True)
    p.grad = torch.tensor([3.0, -1e-6, 0.0])
    SignDescent([p], lr=0.1).step()
    assert p.tolist() == pytest.approx([0.9, 1.1, 1.0])


def test_sgd_step_is_lr_times_gradient() -> None:
    p = torch.tensor([1.0], requires_grad=True)
    p.grad = torch.tensor([2.0])
    make_optimizer("sgd", [p], 0.5).step()
    assert p.item() == pytest.approx(0.0)


def test_unknown_optimizer_is_refused(tiny_spec: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="optimizer.type: 'adamw' is not one of adam, sgd, sign, nadam"):
        parse_spec({**tiny_spec, "optimizer": {"type": "adamw"}})
    with pytest.raises(ValueError):
        make_optimizer("adamw", [], 0.1)


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_each_kind_is_its_torch_optimizer(kind: str) -> None:
    p = torch.zeros(2, requires_grad=True)
    opt = make_optimizer(kind, [p], 0.1)
    want = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "sign": SignDescent, "nadam": torch.optim.NAdam}[kind]
    assert type(opt) is want and opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["params"] == [p]
