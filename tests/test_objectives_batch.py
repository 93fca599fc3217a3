"""objectives/batch.py: diversity and alignment compare the images of a batch; blend for interpolation frames."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from featviz_cli.config import parse_spec
from featviz_cli.errors import SpecError
from featviz_cli.objectives import alignment, blend, channel, diversity, frame_weights, gram_cosine


def test_gram_cosine_of_identical_images_is_one() -> None:
    act = torch.rand(1, 5, 4, 4).expand(3, -1, -1, -1)
    assert torch.allclose(gram_cosine(act), torch.ones(3, 3), atol=1e-6)


def test_gram_cosine_handles_tokens_and_vectors() -> None:
    assert gram_cosine(torch.rand(2, 7, 5)).shape == (2, 2)  # (B, tokens, C)
    assert gram_cosine(torch.rand(2, 5)).shape == (2, 2)


def test_gram_cosine_is_the_cosine_of_the_gram_matrices() -> None:
    act = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    g = [a.flatten(1) @ a.flatten(1).T for a in act]
    want = float((g[0] * g[1]).sum() / (g[0].norm() * g[1].norm()))
    assert float(gram_cosine(act)[0, 1]) == pytest.approx(want, rel=1e-5)


def test_diversity_values_are_minus_lucids_sum() -> None:
    torch.manual_seed(0)
    act = torch.rand(4, 6, 3, 3)
    values = diversity("x")({"x": act})
    sim = gram_cosine(act)
    lucid = sum(float(sim[i, j]) for i in range(4) for j in range(4) if i != j) / 4
    assert values.shape == (4,)
    assert float(values.sum()) == pytest.approx(-lucid, rel=1e-5)
    same = diversity("x")({"x": act[:1].expand(4, -1, -1, -1)})
    assert torch.allclose(same, torch.full((4,), -3 / 4), atol=1e-5)


def test_diversity_groups_compare_only_within_a_group() -> None:
    torch.manual_seed(1)
    a, b = torch.rand(1, 6, 3, 3), torch.rand(1, 6, 3, 3)
    act = torch.cat([a, a, b, b])  # two groups of two identical images
    values = diversity("x", group=2)({"x": act})
    assert torch.allclose(values, torch.full((4,), -1 / 2), atol=1e-5)
    whole = diversity("x")({"x": act})
    assert (whole < values).all()  # across groups the images also count


def test_alignment_penalizes_neighbours_with_decay() -> None:
    act = torch.zeros(4, 2)
    assert torch.equal(alignment("x")({"x": act}), torch.zeros(4))
    act[1] = 1.0  # differs from its neighbours 0 and 2 by 1 per value, from 3 too
    values = alignment("x", decay_ratio=2.0)({"x": act})
    # pairs (0,1) d=1: 1/2; (1,2) d=1: 1/2; (1,3) d=2: 1/4; (0,2),(0,3),(2,3): 0
    assert values.tolist() == pytest.approx([-0.5, -0.75, 0.0, 0.0])
    grouped = alignment("x", group=2)({"x": act})
    assert grouped.tolist() == pytest.approx([-0.5, 0.0, 0.0, 0.0])


def test_frame_weights_go_monotonically_from_a_to_b() -> None:
    w = frame_weights(5)
    assert w == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(a < b for a, b in zip(w, w[1:]))


def test_blend_weights_each_frame() -> None:
    acts = {"c": torch.rand(3, 4, 2, 2, generator=torch.Generator().manual_seed(3))}
    a, b = channel("c", 0), channel("c", 1, batch=2)
    o = blend(a, b, [0.0, 0.25, 1.0])
    va, vb = a(acts), b(acts)
    assert torch.allclose(o(acts), torch.stack([va[0], 0.75 * va[1] + 0.25 * vb[1], vb[2]]))
    assert o.layers == ("c",) and [o.label(i) for i in range(4)] == ["t=0.00", "t=0.25", "t=1.00", ""]
    assert o.description == "interpolate(channel c:0 -> channel c:1, 3 frames)"


@pytest.mark.parametrize(
    ("change", "field", "fix"),
    [
        (lambda d: None, "objective[1].type", "needs a batch of 2 or more images; set param.batch"),
        (lambda d: d["param"].update(batch=4) or d["objective"][1].update(group=3), "objective[1].group",
         "does not divide the batch of 4"),
        (lambda d: d["param"].update(batch=4) or d["objective"][1].update(batch=0), "objective[1].batch",
         "remove 'batch'"),
        (lambda d: d["param"].update(batch=4) or d["objective"][0].update(group=2), "objective[0].group",
         "only 'diversity' and 'alignment' take a group"),
        (lambda d: d["param"].update(batch=4) or d["objective"][1].pop("layer"), "objective[1].layer", "required"),
        (lambda d: d["param"].update(batch=4) or d["objective"][1].update(unit=1), "objective[1].unit",
         "takes no unit"),
    ],
)
def test_bad_diversity_specs_name_the_field(tiny_spec: dict[str, Any], change, field: str, fix: str) -> None:
    tiny_spec["objective"] = [dict(tiny_spec["objective"]), {"type": "diversity", "layer": "act1"}]
    change(tiny_spec)
    with pytest.raises(SpecError) as info:
        parse_spec(tiny_spec)
    assert info.value.field == field and fix in str(info.value)
