"""A spec in, files out (featviz_cli/examples/run.py): the spec's dataset section, the layers it names, the
checkpoint it resumes, ``featviz examples`` / ``featviz render`` through the CLI, killed and rerun, and reruns
that repair exactly the damaged files of a finished pass."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

import featviz_cli
from featviz_cli import cli_common
from featviz_cli.cli import app
from featviz_cli.config import json_schema, load_spec, parse_spec
from featviz_cli.errors import SpecError
from featviz_cli.examples.run import run_examples, spec_layers
from featviz_cli.hooks import OUTPUT

from conftest import featviz_cmd
from examples_fixtures import DAMAGES, damage, file_states, make_image, red_folder, same_bytes, touched


@pytest.fixture(autouse=True)
def _no_sticky_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli_common.state, "debug", False)


def test_dataset_section_validates_and_is_in_the_schema(tiny_spec: dict) -> None:
    spec = parse_spec({**tiny_spec, "dataset": {"images": "photos", "k": 4, "bottom": True}})
    assert (spec.dataset.images, spec.dataset.k, spec.dataset.bottom, spec.dataset.workers) == ("photos", 4, True, 2)
    with pytest.raises(SpecError, match="dataset.k: must be >= 1"):
        parse_spec({**tiny_spec, "dataset": {"k": 0}})
    with pytest.raises(SpecError, match="dataset.imgs: unknown key. Did you mean 'images'"):
        parse_spec({**tiny_spec, "dataset": {"imgs": "x"}})
    props = json_schema()["properties"]["dataset"]["properties"]
    assert {"images", "k", "bottom", "layers", "batch_size", "workers", "checkpoint_every", "rf_mass"} <= set(props)


def _spec_file(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_cli_examples_writes_pages_and_resumes(tmp_path: Path, tiny_spec: dict) -> None:
    red_folder(tmp_path / "images")
    (tmp_path / "images" / "bad.jpg").write_bytes(b"nope")
    spec = _spec_file(tmp_path, {**tiny_spec, "objective": {"type": "channel", "layer": "act2", "unit": 3}})
    args = ["examples", str(spec), "--images", str(tmp_path / "images"), "--out", str(tmp_path / "out"),
            "--k", "2", "--workers", "0", "--batch-size", "4", "--set", "dataset.layers=[act1, act3]"]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    pages = first.stdout.split()
    assert pages == [str(tmp_path / "out" / "examples" / name / "index.html") for name in ("act1", "act3")]
    docs = {name: json.loads((tmp_path / "out" / "examples" / name / "examples.json").read_text())
            for name in ("act1", "act3")}
    assert len(docs["act1"]["units"]) <= 8 and docs["act3"]["activation_shape"] == [32, 8, 8]
    assert docs["act1"]["unreadable"] == 1 and docs["act1"]["images_seen"] == 12
    assert "Ranked 12 image(s) for 2 layer(s) (1 unreadable), at" in first.stderr
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "resuming from" in again.stderr and "13 of 13 images" in again.stderr
    assert "(1 unreadable), all from the checkpoint" in again.stderr
    assert json.loads((tmp_path / "out" / "examples" / "act3" / "examples.json").read_text()) == docs["act3"]


def test_cli_examples_input_errors(tmp_path: Path, tiny_spec: dict) -> None:
    runner = CliRunner()
    spec = _spec_file(tmp_path, tiny_spec)
    result = runner.invoke(app, ["examples", str(spec), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "dataset.images: no image folder; give --images DIR" in result.stderr
    result = runner.invoke(app, ["examples", str(spec), "--images", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a folder" in result.stderr
    make_image(tmp_path / "imgs" / "a.png")
    result = runner.invoke(app, ["examples", str(spec), "--images", str(tmp_path / "imgs"), "--out",
                                 str(tmp_path / "o"), "--set", "dataset.layers=[act9]"])
    assert result.exit_code == 2 and "dataset.layers: no layer 'act9'" in result.stderr


SLOW_MODEL = '''
import time
import torch
import torch.nn as nn


class Slow(nn.Module):
    """A tiny convnet that takes 40 ms per forward, so a pass can be killed half-way."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.act = nn.ReLU()
        self.featviz_info = {"input_size": 16, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}

    def forward(self, x):
        time.sleep(0.04)
        return self.act(self.conv(x))


def build():
    torch.manual_seed(0)
    return Slow()
'''


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(featviz_cli.__file__).parent.parent),
                                                      env.get("PYTHONPATH")]))
    return env


def _tree(directory: Path) -> dict[str, str]:
    """sha256 of every file under a layer directory."""
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_sigkill_mid_pass_then_rerun_gives_the_uninterrupted_result(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "slowmodel.py").write_text(SLOW_MODEL)
    rng = np.random.default_rng(0)
    for i in range(120):
        path = tmp_path / "images" / f"part{i // 50}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
    spec = _spec_file(tmp_path, {"model": {"name": "slow", "python": "slowmodel:build"},
                                 "objective": {"type": "channel", "layer": "act", "unit": 0}, "device": "cpu",
                                 "dataset": {"k": 3, "bottom": True, "workers": 1, "batch_size": 4,
                                             "checkpoint_every": 8}})

    def command(out: str) -> list[str]:
        return featviz_cmd() + ["examples", str(spec), "--images", str(tmp_path / "images"), "--out",
                                str(tmp_path / out), "--quiet"]

    def checkpoint_done(out: str) -> int:
        found = list((tmp_path / out / "examples").glob("checkpoint-*.pt"))
        return int(torch.load(found[0], weights_only=True)["done"]) if found else -1

    done_at_kill = []
    for _ in range(2):  # kill it twice, each time after it has made progress past the last checkpoint
        before = checkpoint_done("killed")
        proc = subprocess.Popen(command("killed"), cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300  # generous: a busy machine starts torch slowly
        while checkpoint_done("killed") <= before + 8 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
        done_at_kill.append(checkpoint_done("killed"))
    assert 0 < done_at_kill[0] < done_at_kill[1] < 120, done_at_kill
    assert not (tmp_path / "killed" / "examples" / "act" / "examples.json").exists()

    resumed = subprocess.run(command("killed")[:-1], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done_at_kill[1]} of 120 images already done" in resumed.stderr
    monkeypatch.chdir(tmp_path)  # the uninterrupted pass, in this process
    straight = load_spec(spec, ["output.dir=straight", f"dataset.images={tmp_path / 'images'}"])
    assert run_examples(straight)[0].resumed_from == 0
    killed_dir, straight_dir = (tmp_path / d / "examples" / "act" for d in ("killed", "straight"))
    doc = json.loads((killed_dir / "examples.json").read_text())
    assert doc["images_seen"] == 120 and len(doc["units"]) == 4
    assert doc == json.loads((straight_dir / "examples.json").read_text())
    assert _tree(killed_dir) == _tree(straight_dir)
    assert not list((tmp_path / "killed").rglob("*.tmp"))
    killed, straight = (file_states(tmp_path / d) for d in ("killed", "straight"))
    assert set(killed) == set(straight)
    # every file but the checkpoint byte for byte (pages and index too); the checkpoint holds the same state,
    # but pickle shares equal strings by identity, which differs in a resumed process
    assert {k: v[0] for k, v in killed.items() if "checkpoint-" not in k} == {
        k: v[0] for k, v in straight.items() if "checkpoint-" not in k}
    (ckpt,) = (tmp_path / "killed" / "examples").glob("checkpoint-*.pt")
    _assert_same_state(torch.load(ckpt, weights_only=True),
                       torch.load(tmp_path / "straight" / "examples" / ckpt.name, weights_only=True))


def _assert_same_state(a: Any, b: Any) -> None:
    """Two checkpoints' contents are equal (tensors exactly, with their dtypes)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for key in a:
            _assert_same_state(a[key], b[key])
    else:
        assert a == b


def test_spec_layers_default_to_the_objective(tiny_spec: dict) -> None:
    terms = [{"type": "channel", "layer": "act2", "unit": 1}, {"type": "logit", "unit": 3},
             {"type": "channel", "layer": "act2", "unit": 2}]
    assert spec_layers(parse_spec({**tiny_spec, "objective": terms})) == ["act2", OUTPUT]
    spec = parse_spec({**tiny_spec, "dataset": {"layers": ["act1"]}})
    assert spec_layers(spec) == ["act1"]


def test_render_with_a_dataset_section_also_writes_the_examples(tmp_path: Path, tiny_spec: dict) -> None:
    red_folder(tmp_path / "images")
    spec = _spec_file(tmp_path, {**tiny_spec, "dataset": {"images": str(tmp_path / "images"), "k": 2,
                                                            "workers": 0}})
    result = CliRunner().invoke(app, ["render", str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(tmp_path / "out" / "grid.png"),
                                     str(tmp_path / "out" / "examples" / "act2" / "index.html")]
    doc = json.loads((tmp_path / "out" / "examples" / "act2" / "examples.json").read_text())
    assert doc["images_seen"] == 12 and len(doc["units"]["3"]["top"]) == 2
    assert (tmp_path / "out" / "meta.json").exists()


def test_a_sweep_spec_gives_examples_for_all_its_layers(tmp_path: Path, tiny_spec: dict) -> None:
    data = {**tiny_spec, "objective": {"type": "channel", "layer": ["act1", "act3"], "units": "all"}}
    assert spec_layers(parse_spec(data)) == ["act1", "act3"]
    red_folder(tmp_path / "images")
    spec = _spec_file(tmp_path, data)
    result = CliRunner().invoke(app, ["examples", str(spec), "--images", str(tmp_path / "images"), "--out",
                                      str(tmp_path / "atlas"), "--k", "1", "--workers", "0", "-q"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.split()) == 2


def test_a_spec_s_checkpoint_keeps_its_fingerprint_and_name(tmp_path: Path, tiny_spec: dict,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    red_folder(tmp_path / "images")
    monkeypatch.chdir(tmp_path)
    spec = parse_spec({**tiny_spec, "output": {"dir": "out"},
                       "dataset": {"images": "images", "k": 2, "workers": 0, "layers": ["act1", "act3"]}})
    run_examples(spec)
    model = {"name": "test_tiny", "weights": None, "checkpoint": None, "python": None, "pretrained": True,
             "trust_checkpoint": False, "kwargs": {}, "input_size": None, "mean": None, "std": None,
             "value_range": None}
    fingerprint = {"format": 1, "model": model, "input_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                   "value_range": [0.0, 1.0], "layers": ["act1", "act3"], "k": 2, "bottom": False,
                   "images": str((tmp_path / "images").resolve()), "rf_mass": 0.9}
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:12]
    base = tmp_path / "out" / "examples"
    assert [p.name for p in base.glob("checkpoint-*.pt")] == [f"checkpoint-{key}.pt"]
    assert torch.load(base / f"checkpoint-{key}.pt", weights_only=True)["fingerprint"] == fingerprint


def test_examples_of_a_dictionary_rank_its_rows_by_projection(tmp_path: Path, tiny_model) -> None:
    """A direction term with rows: the units are the rows, ranked by the projection onto each (max over
    space); the planted direction's top example is the photo that contains it."""
    from directions_helpers import PLANTED, dictionary_spec, planted_dictionary, square_photos

    photos = square_photos(tmp_path / "photos")
    planted_dictionary(tiny_model, photos, tmp_path / "dict.npy")
    spec = dictionary_spec(tmp_path / "dict.npy", output={"dir": str(tmp_path / "out")},
                           dataset={"images": str(photos), "k": 2, "workers": 0})
    result, paths = run_examples(parse_spec(spec))
    doc = json.loads(paths["act3"].read_text())
    assert doc["activation_shape"] == [6, 8, 8] and sorted(doc["units"], key=int) == [str(u) for u in range(6)]
    assert doc["basis"]["rows"] == 6 and doc["basis"]["sha256"] == hashlib.sha256(
        (tmp_path / "dict.npy").read_bytes()).hexdigest()
    assert doc["units"][str(PLANTED)]["top"][0]["source"] == "red.png"
    m = torch.from_numpy(np.load(tmp_path / "dict.npy"))
    ranking = result.layers["act3"].top
    from directions_helpers import acts_of, images_of

    acts = acts_of(tiny_model, images_of([photos / n for n in sorted(p.name for p in photos.iterdir())]))
    brute = torch.einsum("bchw,nc->bnhw", acts, m).flatten(2).max(2).values  # (images, rows), sorted names
    assert torch.allclose(ranking.values[:, 0], brute.max(0).values, atol=1e-4)


def test_examples_of_a_dictionary_refuse_a_matrix_of_another_width(tmp_path: Path) -> None:
    np.save(tmp_path / "dict.npy", np.ones((3, 16), np.float32))
    (tmp_path / "photos").mkdir()
    make_image(tmp_path / "photos" / "a.png")
    photos = tmp_path / "photos"
    spec = {"model": {"name": "test_tiny"}, "output": {"dir": str(tmp_path / "out")},
            "objective": {"type": "direction", "layer": "act3", "vector_file": str(tmp_path / "dict.npy"), "unit": 0},
            "dataset": {"images": str(photos), "workers": 0}}
    with pytest.raises(SpecError, match=r"^objective\.vector_file: .*rows have 16 values but layer 'act3' has 32 "
                                        r"channels; the matrix must be N x 32"):
        run_examples(parse_spec(spec))
    assert not (tmp_path / "out" / "examples" / "act3").exists()


# ---------------------------------------------------------------- reruns that repair a finished pass


def _spec_in(tiny_spec: dict, root: Path, out: Path) -> Any:
    return parse_spec({**tiny_spec, "output": {"dir": str(out)},
                       "dataset": {"images": str(root / "images"), "k": 2, "bottom": True, "workers": 0,
                                   "batch_size": 5, "layers": ["act1", "act3"]}})


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A finished pass (``ref``) over the red folder, two layers, top and bottom; and a file of each kind."""
    root = tmp_path_factory.mktemp("finished")
    red_folder(root / "images")
    tiny = {"model": {"name": "test_tiny"}, "objective": {"type": "channel", "layer": "act2", "unit": 3},
            "device": "cpu"}
    result, _ = run_examples(_spec_in(tiny, root, root / "ref"))
    assert result.resumed_from == 0 and result.repaired == {}
    ckpt = next((root / "ref" / "examples").glob("checkpoint-*.pt")).name
    kinds = {
        "crop": "examples/act3/unit_00007/bottom_01_crop.png",
        "whole image": "examples/act1/unit_00002/top_00_full.jpg",
        "examples.json": "examples/act3/examples.json",
        "layer page": "examples/act1/index.html",
        "index page": "examples/index.html",
        "checkpoint": f"examples/{ckpt}",
        "checkpoint digest": f"examples/{ckpt[:-3]}.sha256",
    }
    assert all((root / "ref" / rel).is_file() for rel in kinds.values())
    return root, kinds


REASONS = {
    ("crop", "corrupt"): "does not match its recorded sha256", ("crop", "delete"): "is missing",
    ("examples.json", "truncate"): "is not valid JSON", ("examples.json", "delete"): "is missing",
    ("layer page", "corrupt"): "had other bytes", ("checkpoint", "delete"): "is missing",
    ("checkpoint", "corrupt"): "does not match its recorded sha256 (checkpoint-",
    ("checkpoint", "truncate"): "does not match its recorded sha256 (checkpoint-",
    ("checkpoint digest", "corrupt"): "is missing or unreadable",
}


WORDS = {"crop": "crop(s)", "whole image": "whole image(s)", "examples.json": "examples.json",
         "layer page": "layer page(s)", "index page": "index page", "checkpoint": "checkpoint",
         "checkpoint digest": "checkpoint digest"}


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("kind", ["crop", "whole image", "examples.json", "layer page", "index page", "checkpoint",
                                  "checkpoint digest"])
def test_a_rerun_repairs_exactly_the_damaged_file(finished: tuple[Path, dict[str, str]], tiny_spec: dict,
                                                  tmp_path: Path, kind: str, how: str) -> None:
    root, kinds = finished
    rel = kinds[kind]
    shutil.copytree(root / "ref", tmp_path / "out")
    damage(tmp_path / "out" / rel, how)
    before = file_states(tmp_path / "out")
    messages: list[str] = []
    result, paths = run_examples(_spec_in(tiny_spec, root, tmp_path / "out"), notify=messages.append)
    assert same_bytes(tmp_path / "out", root / "ref")  # the uninterrupted pass's files, all of them
    assert touched(before, file_states(tmp_path / "out")) == {rel}  # and only the damaged one written
    assert list(result.repaired) == [rel] and REASONS.get((kind, how), "") in result.repaired[rel]
    assert messages[-1] == f"Repaired 1 {WORDS[kind]}: {rel} {result.repaired[rel]}."  # one line for the one kind
    # the pass itself ran again only for a checkpoint that was damaged or gone
    assert (result.resumed_from == result.files) == (kind != "checkpoint")
    assert set(paths) == {"act1", "act3"}


def test_a_rerun_of_an_intact_pass_rewrites_nothing_and_removes_left_over_temp_files(
        finished: tuple[Path, dict[str, str]], tiny_spec: dict, tmp_path: Path) -> None:
    root, kinds = finished
    out = tmp_path / "out"
    shutil.copytree(root / "ref", out)
    before = file_states(out)
    temps = [f"{Path(kinds[kind]).parent}/.{Path(kinds[kind]).name}.0123456789ab.tmp" for kind in kinds]
    for rel in temps:  # as writes killed midway leave them, one beside a file of each kind
        (out / rel).write_bytes(b"half")
    (out / "examples" / "act1" / ".notes.txt.0123456789ab.tmp").write_bytes(b"not ours")
    messages: list[str] = []
    result, _ = run_examples(_spec_in(tiny_spec, root, out), notify=messages.append)
    assert result.repaired == {} and not any(m.startswith("Repaired") for m in messages)
    assert result.resumed_from == result.files
    assert not any((out / rel).exists() for rel in temps)
    (out / "examples" / "act1" / ".notes.txt.0123456789ab.tmp").unlink()  # another program's: left alone
    assert touched(before, file_states(out)) == set() and same_bytes(out, root / "ref")


def test_the_summary_line_says_what_was_repaired(finished: tuple[Path, dict[str, str]], tiny_spec: dict,
                                                 tmp_path: Path) -> None:
    root, kinds = finished
    out = tmp_path / "out"
    shutil.copytree(root / "ref", out)
    args = ["examples", str(_spec_file(tmp_path, tiny_spec)), "--images", str(root / "images"), "--out", str(out),
            "--k", "2", "--bottom", "--workers", "0", "--batch-size", "5", "--set", "dataset.layers=[act1, act3]"]
    runner = CliRunner()
    intact = runner.invoke(app, args)
    assert intact.exit_code == 0, intact.output
    assert intact.stderr.strip().splitlines()[-1] == "Ranked 12 image(s) for 2 layer(s) (0 unreadable), all from the checkpoint"
    for kind in ("crop", "whole image", "examples.json"):
        damage(out / kinds[kind], "corrupt")
    damage(out / kinds["checkpoint"], "truncate")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"{out / kinds['checkpoint']} does not match its recorded sha256 " \
                       f"({Path(kinds['checkpoint digest']).name}): deleting it and running the pass again"
    assert lines[-1].startswith("Ranked 12 image(s) for 2 layer(s) (0 unreadable), at ")
    assert lines[-1].endswith("images/s; repaired 4 file(s): 1 checkpoint, 1 whole image(s), 1 crop(s), "
                              "1 examples.json")
    assert lines[-5:-1] == [  # one plain line per kind, in the summary's order
        f"Repaired 1 checkpoint: {kinds['checkpoint']} does not match its recorded sha256 "
        f"({Path(kinds['checkpoint digest']).name}).",
        f"Repaired 1 whole image(s): {kinds['whole image']} does not match its recorded sha256.",
        # the crop's layer lost its examples.json, so no record vouches for the crop: drawn again, bytes compared
        f"Repaired 1 crop(s): {kinds['crop']} had other bytes.",
        f"Repaired 1 examples.json: {kinds['examples.json']} is not valid JSON."]
    assert same_bytes(out, root / "ref")


WRITE_KILLER = """
import sys, time
from pathlib import Path
from featviz_cli.cli import app
from featviz_cli.examples import write

original, written = write._sync, []


def stop_after_five(path, data, problem=""):
    why = original(path, data, problem)
    if why:
        written.append(path)
        if len(written) == 5:
            Path(sys.argv[1]).write_text("5 written")
            time.sleep(120)  # killed here
    return why


write._sync = stop_after_five
app(sys.argv[2:])
"""


def test_sigkill_while_writing_then_rerun_gives_the_uninterrupted_result(
        finished: tuple[Path, dict[str, str]], tiny_spec: dict, tmp_path: Path) -> None:
    root, _ = finished
    args = ["examples", str(_spec_file(tmp_path, tiny_spec)), "--images", str(root / "images"), "--out",
            str(tmp_path / "out"), "--k", "2", "--bottom", "--workers", "0", "--batch-size", "5", "--set",
            "dataset.layers=[act1, act3]", "--quiet"]
    marker = tmp_path / "marker"
    proc = subprocess.Popen([featviz_cmd()[0], "-c", WRITE_KILLER, str(marker), *args], cwd=tmp_path, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and marker.exists(), proc.stderr.read()
    assert not list((tmp_path / "out").rglob("examples.json"))
    resumed = subprocess.run(featviz_cmd() + args[:-1], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "all from the checkpoint; repaired " in resumed.stderr  # the files the kill left unwritten
    assert same_bytes(tmp_path / "out", root / "ref") and not list((tmp_path / "out").rglob("*.tmp"))
