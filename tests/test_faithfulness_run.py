"""featviz_cli/faithfulness/run.py and ``featviz faithfulness``: on a network with a planted unit (its render
a checkerboard, off the photos' distribution) and a natural one, only the planted one is flagged; the numbers
reach the manifest and the unit pages; a rerun keeps what is unchanged and measures what changed."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import faith_models
from featviz_cli import sweep as sw
from featviz_cli.cli import app
from featviz_cli.config import parse_spec
from featviz_cli.errors import InputError, LayerError
from featviz_cli.examples import run_examples
from featviz_cli.faithfulness import THRESHOLD, read_layer, run_faithfulness


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("faith")
    faith_models.photos(base / "photos")
    out = base / "out"
    assert sw.run_sweep(parse_spec(copy.deepcopy(faith_models.SPEC)), out).done == 2
    spec = copy.deepcopy(faith_models.SPEC)
    spec.update(dataset={"images": str(base / "photos"), "k": 3, "workers": 0}, output={"dir": str(out)})
    run_examples(parse_spec(spec))
    return out


def test_the_planted_unit_is_flagged_and_the_natural_one_is_not(planted: Path) -> None:
    messages: list[str] = []
    report = run_faithfulness(planted, notify=messages.append)
    assert (report.measured, report.kept, report.flagged) == (2, 0, 1) and report.files == ["faithfulness/units.json"]
    assert "compared at early" in messages[0]
    units = read_layer(planted, "units")
    natural, fooled = units["0"], units["1"]
    assert natural["flagged"] is False and natural["path"] > 0.75  # processed like the red photos that drive it
    assert fooled["flagged"] is True and fooled["path"] < 0.25  # a checkerboard, unlike the green photos
    assert fooled["ratio"] > 3 and 0.5 < natural["ratio"] < 1.5  # and it drives its unit far beyond any photo
    assert natural["threshold"] == THRESHOLD and [row["layer"] for row in natural["layers"]] == ["early"]
    row = fooled["layers"][0]
    assert row["top"] > row["random"] and row["score"] == pytest.approx(
        (row["render"] - row["random"]) / (row["top"] - row["random"]))
    manifest = json.loads((planted / "manifest.json").read_text())
    by_unit = {e["unit"]: e for e in manifest["units"]}
    assert by_unit[1]["faithfulness"]["flagged"] is True and by_unit[0]["faithfulness"]["flagged"] is False
    page = (planted / "gallery/units/unit_00001.html").read_text()
    assert "off-distribution" in page and "<h2>Faithfulness</h2>" in page
    assert "off-distribution" not in (planted / "gallery/units/unit_00000.html").read_text()
    index = (planted / "index.html").read_text()
    assert "1 of 2 renders flagged" in index


def test_a_rerun_keeps_what_is_unchanged_and_measures_a_changed_render(planted: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(planted, out)
    run_faithfulness(out)
    again = run_faithfulness(out)
    assert (again.measured, again.kept, again.flagged) == (0, 2, 1)
    (out / "units/units/00000.png").write_bytes(b"damaged")  # the unit is not done any more: no numbers for it
    sw.rebuild(out)
    spec = parse_spec(copy.deepcopy(faith_models.SPEC))
    sw.run_sweep(spec, out)  # repaired: the same image again, and measured again (its sha256 is checked)
    third = run_faithfulness(out)
    assert (third.measured, third.kept) == (0, 2)  # the repaired render has the sha256 it had
    doc = json.loads((out / "faithfulness/units.json").read_text())
    doc["settings"]["random"] = 3  # other settings: everything is measured again
    (out / "faithfulness/units.json").write_text(json.dumps(doc))
    assert run_faithfulness(out).measured == 2
    examples = out / "examples/units/examples.json"
    examples.write_text(examples.read_text().replace('"k": 3', '"k": 3 '))  # other examples: the old numbers go
    sw.rebuild(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert all("faithfulness" not in e for e in manifest["units"])


def test_layers_without_examples_are_skipped_with_the_fix_and_errors_name_the_input(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = copy.deepcopy(faith_models.SPEC)
    spec["steps"] = 2
    sw.run_sweep(parse_spec(spec), out)
    messages: list[str] = []
    report = run_faithfulness(out, notify=messages.append)
    assert report.skipped == ["units"] and report.measured == 0 and "run 'featviz examples'" in messages[-1]
    with pytest.raises(LayerError, match="--path"):
        run_faithfulness(out, path=["nope"])
    with pytest.raises(InputError, match=r"has no sweep\.json: it is not a sweep output directory; .*featviz examples"):
        run_faithfulness(tmp_path)
    result = CliRunner().invoke(app, ["faithfulness", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("Error: ") and len(result.output.splitlines()) == 1


def test_the_command_measures_and_reports(planted: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(planted, out)
    result = CliRunner().invoke(app, ["faithfulness", str(out), "--threshold", "0.95", "--random", "8"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out.resolve() / "index.html")
    assert "2 unit(s) measured, 0 kept from before, 2 flagged off-distribution (path score below 0.95)" in result.stderr
