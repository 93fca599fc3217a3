"""Same bytes before and after a refactor: the sha256 of every image the CLI writes for each
``configs/*.yaml`` (tiny size and steps, CPU), a small sweep and a dataset-examples pass.

    python tests/golden/same_bytes.py --record tests/golden/bytes-cpu.json   # before the change
    python tests/golden/same_bytes.py --check tests/golden/bytes-cpu.json    # after it: exit 1 on any difference

Each command runs in its own process through ``python -m featviz_cli``, exactly as a user runs
it. The hashes depend on the CPU's kernels (bf16 where the CPU has it), so compare records made
on the same kind of machine; a change that is meant to alter images records a new file.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
TINY = ["--steps", "4", "--device", "cpu", "--set", "param.size=32", "-q"]
#: Per-config overrides that keep a tiny run valid and offline.
EXTRA = {
    "regularized": ["--set", "thresholds=[2]"],
    "torchvision": ["--set", "model.weights=none"],
    "interpolation": ["--set", "interpolate.frames=4"],
}


def _run(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-m", "featviz_cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"featviz {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")


def _hashes(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def collect(tmp: Path) -> dict[str, dict[str, str]]:
    """Run every command into ``tmp`` and return {command name: {relative file: sha256}}."""
    record: dict[str, dict[str, str]] = {}
    for cfg in sorted((ROOT / "configs").glob("*.yaml")):
        out = tmp / cfg.stem
        _run(["render", str(cfg), "--out", str(out), *TINY, *EXTRA.get(cfg.stem, [])], ROOT)
        record[f"render {cfg.stem}"] = _hashes(out)
        print(f"render {cfg.stem}: {len(record[f'render {cfg.stem}'])} image(s)", file=sys.stderr)
    out = tmp / "sweep"
    _run(["sweep", str(ROOT / "configs/sweeps/efficientnet_blocks.yaml"), "--out", str(out), *TINY,
          "--set", "objective.units=0:6", "--set", "sweep.batch=4", "--set", "sweep.page_size=4"], ROOT)
    record["sweep efficientnet_blocks"] = _hashes(out)
    out = tmp / "examples"
    _run(["examples", str(ROOT / "configs/channel.yaml"), "--images", str(ROOT / "tests/data"), "--out", str(out),
          "--k", "2", "--bottom", "--workers", "0", "--device", "cpu", "-q"], ROOT)
    record["examples channel"] = _hashes(out)
    return record


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--record", type=Path, help="write the hashes to this JSON file")
    group.add_argument("--check", type=Path, help="compare with this JSON file; exit 1 on a difference")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        record = collect(Path(tmp))
    n = sum(len(v) for v in record.values())
    if args.record:
        args.record.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"recorded {n} image hashes of {len(record)} commands in {args.record}")
        return 0
    expected = json.loads(args.check.read_text())
    bad = []
    for name in sorted(set(expected) | set(record)):
        want, got = expected.get(name, {}), record.get(name, {})
        for f in sorted(set(want) | set(got)):
            if want.get(f) != got.get(f):
                bad.append(f"{name}: {f}: {'missing' if f not in got else 'new' if f not in want else 'differs'}")
    for line in bad:
        print(line)
    print(f"{n} image hashes of {len(record)} commands: {'all the same' if not bad else f'{len(bad)} differ'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
