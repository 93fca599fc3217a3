"""Diversity and alignment: terms that compare batch elements; a batch of K images for one unit."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from featviz_cli.config import parse_spec
from featviz_cli.engine import render
from featviz_cli.models.preprocess import Preprocess
from featviz_cli.errors import SpecError
from featviz_cli.hooks import forward_to
from featviz_cli.objectives import alignment, diversity, from_spec, gram_cosine


def _mean_pairwise(sim: torch.Tensor) -> float:
    b = sim.shape[0]
    return float(sim[~torch.eye(b, dtype=torch.bool)].mean())


def test_gram_cosine_of_identical_images_is_one() -> None:
    act = torch.rand(1, 5, 4, 4).expand(3, -1, -1, -1)
    assert torch.allclose(gram_cosine(act), torch.ones(3, 3), atol=1e-6)


def test_gram_cosine_handles_tokens_and_vectors() -> None:
    assert gram_cosine(torch.rand(2, 7, 5)).shape == (2, 2)  # (B, tokens, C)
    assert gram_cosine(torch.rand(2, 5)).shape == (2, 2)


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


def test_diversity_from_the_spec_describes_itself(tiny_spec: dict[str, Any]) -> None:
    tiny_spec["objective"] = [tiny_spec["objective"], {"type": "diversity", "layer": "act1", "weight": 2.0}]
    tiny_spec["param"]["batch"] = 4
    spec = parse_spec(tiny_spec)
    o = from_spec(spec.objective)
    assert o.description == "channel act2:3 + 2 * diversity act1"
    assert o.layers == ("act2", "act1")
    assert [o.label(i) for i in range(4)] == ["act2:3"] * 4


def _render_sim(tiny_spec: dict[str, Any], model, info, weight: float) -> tuple[float, list[float]]:
    terms = [{"type": "channel", "layer": "act2", "unit": 3}]
    if weight:
        terms.append({"type": "diversity", "layer": "act2", "weight": weight})
    spec = parse_spec({**tiny_spec, "objective": terms, "param": {"size": 32, "batch": 4}, "steps": 40})
    result = render(spec, model=model, info=info)
    x = torch.nn.functional.interpolate(result.images, size=info.input_size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        act = forward_to(model, Preprocess(info)(x), ["act2"])["act2"]
    return _mean_pairwise(gram_cosine(act)), result.values


def test_diversity_lowers_the_mean_pairwise_gram_similarity(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    plain, _ = _render_sim(tiny_spec, model, info, 0.0)
    diverse, _ = _render_sim(tiny_spec, model, info, 4.0)
    assert plain > 0.95  # without the term the four images converge to the same style
    assert diverse < plain - 0.1


def test_images_of_a_diverse_batch_differ(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    tiny_spec.update(objective=[{"type": "channel", "layer": "act2", "unit": 3},
                                {"type": "diversity", "layer": "act2", "weight": 4.0}],
                     param={"size": 32, "batch": 3}, steps=20)
    images = render(parse_spec(tiny_spec), model=model, info=info).images
    for i in range(3):
        for j in range(i + 1, 3):
            assert (images[i] - images[j]).abs().mean() > 0.02


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


def test_k_diverse_images_per_unit_in_one_batch(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    tiny_spec.update(objective=[{"type": "channel", "layer": "act2", "units": [1, 1, 5, 5]},
                                {"type": "diversity", "layer": "act2", "group": 2}], steps=2)
    result = render(parse_spec(tiny_spec), model=model, info=info)
    assert result.labels == ["act2:1", "act2:1", "act2:5", "act2:5"]
    assert "diversity act2, groups of 2" in result.description
