"""Hooks: layer lookup with suggestions, capture, early stop (later layers never run), cleanup."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from featviz_cli.errors import LayerError
from featviz_cli.hooks import OUTPUT, capture, channel_view, forward_to, layer_names, list_layers, resolve_layer


def _calls(model: nn.Module) -> list[str]:
    seen: list[str] = []
    for name, m in model.named_modules():
        if name:
            m.register_forward_hook(lambda _m, _i, _o, n=name: seen.append(n))
    return seen


def test_unknown_layer_lists_closest(tiny_model) -> None:
    model, _ = tiny_model
    with pytest.raises(LayerError) as e:
        resolve_layer(model, "actt2")
    assert "act2" in str(e.value) and "featviz layers" in str(e.value)


def test_layers_after_the_target_never_run(tiny_model) -> None:
    model, _ = tiny_model
    seen = _calls(model)
    acts = forward_to(model, torch.rand(1, 3, 32, 32), ["act1"])
    assert acts["act1"].shape == (1, 8, 32, 32)
    assert "conv2" not in seen and "fc" not in seen
    assert seen == ["conv1", "act1"]


def test_stops_after_the_deepest_of_several(tiny_model) -> None:
    model, _ = tiny_model
    seen = _calls(model)
    acts = forward_to(model, torch.rand(1, 3, 32, 32), ["act2", "conv1"])
    assert set(acts) == {"act2", "conv1"}
    assert "conv3" not in seen


def test_output_runs_the_whole_network(tiny_model) -> None:
    model, _ = tiny_model
    acts = forward_to(model, torch.rand(2, 3, 32, 32), [OUTPUT, "act3"])
    assert acts[OUTPUT].shape == (2, 10)
    assert acts["act3"].shape == (2, 32, 8, 8)


def test_hooks_removed_even_when_forward_fails(tiny_model) -> None:
    model, _ = tiny_model
    with pytest.raises(RuntimeError):
        with capture(model, ["act1", "act3"]):
            model(torch.rand(1, 5, 32, 32))  # wrong channel count
    assert all(not m._forward_hooks for m in model.modules())
    forward_to(model, torch.rand(1, 3, 32, 32), ["act2"])
    assert all(not m._forward_hooks for m in model.modules())


def test_gradient_reaches_input_through_truncated_forward(tiny_model) -> None:
    model, _ = tiny_model
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    forward_to(model, x, ["act2"])["act2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_list_layers_shapes(tiny_model) -> None:
    model, _ = tiny_model
    rows = {r.name: r for r in list_layers(model, torch.zeros(1, 3, 32, 32))}
    assert list(rows) == layer_names(model)
    assert rows["act2"].shape == (16, 16, 16) and rows["act2"].channels == 16
    assert rows["fc"].shape == (10,) and rows["fc"].channels == 10


def test_channel_view_handles_conv_linear_tokens() -> None:
    assert channel_view(torch.zeros(2, 5, 3, 4)).shape == (2, 5, 12)
    assert channel_view(torch.zeros(2, 7)).shape == (2, 7, 1)
    tokens = torch.arange(2 * 6 * 4.0).view(2, 6, 4)
    v = channel_view(tokens)
    assert v.shape == (2, 4, 6) and v[1, 2, 5] == tokens[1, 5, 2]


def test_layer_never_called_is_an_error() -> None:
    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Identity()
            self.unused = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    with pytest.raises(LayerError, match="never called"):
        forward_to(Skip(), torch.zeros(1, 3, 4, 4), ["unused"])


def test_patched_forwards_restore_the_previous_forward_even_on_error() -> None:
    from featviz_cli.hooks import patched_forwards

    a, b = nn.ReLU(), nn.Identity()
    earlier = lambda x: x + 1  # noqa: E731 - an instance forward set before ours
    b.forward = earlier
    with pytest.raises(RuntimeError, match="boom"):
        with patched_forwards([(a, lambda x: x * 0), (b, lambda x: x * 2)]) as n:
            assert n == 2
            assert torch.equal(a(torch.ones(1)), torch.zeros(1)) and torch.equal(b(torch.ones(1)), torch.full((1,), 2.0))
            raise RuntimeError("boom")
    assert "forward" not in a.__dict__ and torch.equal(a(-torch.ones(1)), torch.zeros(1))
    assert b.forward is earlier


def test_patched_forwards_can_patch_another_method() -> None:
    from featviz_cli.hooks import patched_forwards

    conv = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.ones_(conv.weight)
    with patched_forwards([(conv, lambda x, w, b: x * 3)], method="_conv_forward") as n:
        assert n == 1 and torch.equal(conv(torch.ones(1, 1, 2, 2)), torch.full((1, 1, 2, 2), 3.0))
    assert "_conv_forward" not in conv.__dict__ and torch.equal(conv(torch.ones(1, 1, 2, 2)), torch.ones(1, 1, 2, 2))
