"""The quality benchmark's paired interval and its tables (the scoring itself needs the pretrained judges)."""
from __future__ import annotations

import math
import random
import statistics

import pytest
import torch

from benchmarks.quality import (
    CLASSES,
    Channels,
    channel_row,
    format_table,
    paired_interval,
    parse_channels,
)


def test_planted_shift_excludes_zero_with_the_normal_theory_width() -> None:
    rng = random.Random(3)
    first = [rng.uniform(0.15, 0.31) for _ in range(12)]  # items differ far more than the settings do
    other = [f + 0.02 + rng.gauss(0, 0.004) for f in first]
    diff = [o - f for f, o in zip(first, other)]
    mean, lo, hi = paired_interval(first, other)
    assert mean == pytest.approx(statistics.mean(diff))
    assert 0 < lo < mean < hi
    # the item spread (0.15-0.31) does not enter: only that of the paired differences does
    assert (hi - lo) / 2 == pytest.approx(1.96 * statistics.stdev(diff) / math.sqrt(12), rel=0.3)


def test_noise_only_contains_zero_and_is_symmetric_in_the_order() -> None:
    rng = random.Random(5)
    first = [rng.uniform(0.15, 0.31) for _ in range(12)]
    other = [f + rng.gauss(0, 0.03) for f in first]
    mean, lo, hi = paired_interval(first, other)
    assert lo < 0 < hi
    back = paired_interval(other, first)
    assert back[0] == pytest.approx(-mean)
    assert (back[1], back[2]) == pytest.approx((-hi, -lo), abs=1e-12)


def test_interval_matches_a_brute_force_bootstrap_in_spread() -> None:
    """The interval's width is that of an independent bootstrap of the same differences (python's random)."""
    rng = random.Random(7)
    first = [rng.uniform(0, 1) for _ in range(20)]
    other = [f + rng.gauss(0.1, 0.2) for f in first]
    diff = [o - f for f, o in zip(first, other)]
    means = sorted(sum(rng.choice(diff) for _ in diff) / len(diff) for _ in range(4000))
    ref_lo, ref_hi = means[100], means[3899]
    _, lo, hi = paired_interval(first, other)
    assert hi - lo == pytest.approx(ref_hi - ref_lo, rel=0.15)
    assert lo == pytest.approx(ref_lo, abs=0.03) and hi == pytest.approx(ref_hi, abs=0.03)


def test_a_report_is_reproducible() -> None:
    assert paired_interval([0.1, 0.2, 0.3], [0.2, 0.1, 0.5]) == paired_interval([0.1, 0.2, 0.3], [0.2, 0.1, 0.5])


@pytest.mark.parametrize("first, other", [([], []), ([0.1], [0.1, 0.2])])
def test_unpaired_input_is_refused(first: list[float], other: list[float]) -> None:
    with pytest.raises(ValueError, match="same length"):
        paired_interval(first, other)


def test_channel_table_prints_the_interval_against_the_first_setting() -> None:
    def row(name: str, values: list[list[float]]) -> dict:
        per_seed = [[{"act": 1.0, "plausibility": v, "hf": 0.05} for v in seed] for seed in values]
        return {"setting": name, "steps": 128, "s_per_image": 1.0, "act_relative": 1.0, **channel_row(per_seed)}

    base = row("fft", [[0.20, 0.25, 0.30, 0.15], [0.22, 0.24, 0.28, 0.16]])
    better = row("maco", [[0.25, 0.30, 0.35, 0.20], [0.27, 0.29, 0.33, 0.21]])
    report = {"render_model": "lite0", "judge": "lite1", "seeds": [0, 1], "crops": 16}
    table = format_table(report, {"channels": {"layer": "x", "units": [0, 1, 2, 3]}, "settings": [base, better]})
    lines = table.splitlines()
    assert "vs first, 95 % CI over units" in lines[2]
    assert "| (reference) |" in lines[4]
    assert all(line.count("|") == lines[2].count("|") for line in lines[2:])
    assert "| +0.050 [+0.050, +0.050] | 4 of 4 |" in lines[5]


def test_class_table_prints_the_interval_over_classes() -> None:
    def row(name: str, shift: float) -> dict:
        per_class = {c: 0.3 + 0.04 * i + shift for i, c in enumerate(CLASSES)}
        return {"setting": name, "steps": 128, "s_per_image": 1.0, "cpu_s_per_image": 2.0, "top1": 0.5, "p": 0.3,
                "crop_top1": statistics.mean(per_class.values()), "crop_p": 0.3, "hf": 0.03,
                "crop_top1_by_seed": [0.5, 0.6], "per_class_crop_top1": per_class}

    report = {"render_model": "lite0", "judge": "lite1", "seeds": [0, 1], "crops": 16, "classes": list(CLASSES)}
    lines = format_table(report, {"channels": None, "settings": [row("fft", 0), row("maco", 0.1)]}).splitlines()
    assert "vs first, 95 % CI over classes" in lines[2]
    assert "| (reference) |" in lines[4]
    assert "| +0.100 [+0.100, +0.100] |" in lines[5]
    assert all(line.count("|") == lines[2].count("|") for line in lines[2:6])
    # paired by class name, not by the order a report happens to list them in
    shuffled = row("maco", 0.1)
    shuffled["per_class_crop_top1"] = dict(reversed(list(shuffled["per_class_crop_top1"].items())))
    lines = format_table(report, {"channels": None, "settings": [row("fft", 0), shuffled]}).splitlines()
    assert "| +0.100 [+0.100, +0.100] |" in lines[5]


def test_channels_spread_over_the_layer_and_bad_counts_name_the_flag() -> None:
    from featviz_cli.errors import SpecError

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()
    assert parse_channels("0:4", model) == Channels("0", [0, 2, 4, 6])
    for bad in ("0:0", "0:9", "nope:2", "0:x"):
        with pytest.raises(SpecError, match="--objective"):
            parse_channels(bad, model)


def test_a_bad_crop_side_is_one_error_line_before_anything_is_loaded(tmp_path, capsys) -> None:
    from benchmarks.quality import main

    out = tmp_path / "q"
    assert main(["--crop-side", "0.9", "0.2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["Error: --crop-side: LO HI needs 0.05 <= LO <= HI <= 1 (fractions of the image side)."]
    assert not out.exists()
