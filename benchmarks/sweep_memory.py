"""Peak memory of a sweep does not grow with its size: a small and a large sweep of one layer, side by side.

Each sweep runs as its own ``featviz sweep`` process; its peak resident set size comes from
``wait4`` (the kernel's ``ru_maxrss`` of that process). The check: the large sweep's peak is
within 20% of the small one's. Not part of ``make test`` (it takes a minute or more)::

    python benchmarks/sweep_memory.py                       # efficientnet_lite0 _blocks.15, 16 vs 256 units
    python benchmarks/sweep_memory.py --model test_tiny --layer act3 --set 'model.kwargs={width: 64}'
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def run(spec: dict, out: Path, extra: list[str]) -> tuple[float, float, int]:
    """Run one sweep in a child process; return (wall seconds, peak RSS in MiB, exit status)."""
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(spec))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "featviz_cli", "sweep", str(path), "--out", str(out), "--quiet",
                             *extra], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, proc.returncode  # ru_maxrss: KiB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--layer", default="_blocks.15", help="a layer with at least --large channels")
    ap.add_argument("--small", type=int, default=16)
    ap.add_argument("--large", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16, help="units per batch (sweep.batch)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--set", action="append", default=[], help="extra --set for featviz sweep")
    args = ap.parse_args()
    extra = [x for s in args.set for x in ("--set", s)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="featviz-sweep-mem-") as tmp:
        for n in (args.small, args.large):
            spec = {"model": {"name": args.model}, "objective": {"type": "channel", "layer": args.layer, "units": f"0:{n}"},
                    "param": {"size": args.size}, "steps": args.steps, "device": "cpu",
                    "sweep": {"batch": args.batch}}
            wall, rss, code = run(spec, Path(tmp) / f"units{n}", extra)
            if code != 0:
                print(f"the {n}-unit sweep failed (exit {code})", file=sys.stderr)
                return 1
            rows.append((n, -(-n // args.batch), wall, rss))
    print(f"{args.model} {args.layer}, {args.size} px, {args.steps} steps, batch {args.batch}, CPU; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'units':>6} {'batches':>8} {'wall s':>8} {'peak RSS MiB':>13}")
    for n, b, wall, rss in rows:
        print(f"{n:>6} {b:>8} {wall:>8.1f} {rss:>13.0f}")
    ratio = rows[1][3] / rows[0][3]
    verdict = "OK" if ratio <= 1.2 else "TOO MUCH GROWTH"
    print(f"peak RSS ratio {args.large}/{args.small} units: {ratio:.3f} (limit 1.20) {verdict}")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
