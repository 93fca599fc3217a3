"""featviz vs torch-lucent vs the bare network, the same work in one run: ``python -m benchmarks.compare``.

The work (issue 5): 16 channels of a layer rendered in one batch, 64 steps, FFT image with
decorrelated colour, Lucid's standard transforms, Adam 0.05, random weights, for
  googlenet  torchvision googlenet, ``inception4a``
  resnet50   torchvision resnet50, ``layer3``
  lite0      featviz's EfficientNet-Lite0, ``_blocks.8`` (the first block of stage 5 of 7)
in two comparisons:
  equal      both tools optimize a 224 px image, so the network sees 224 px in both;
  default    each tool's defaults end to end: 128 px images that both resize to 224 before
             the network (featviz: ``resize_to_model``, torch-lucent: its upsample), featviz
             with its default precision and memory format.
The floor is the network truncated at the layer, frozen, forward + backward to the input only,
same batch and 224 px, exactly as featviz runs it: its precision and memory format, BatchNorm
folded, strided depthwise convolutions in fp32 on a bf16 CPU (reference rows: the network not
rewritten, and plain fp32 NCHW).

Every measurement runs in its own subprocess (so peak RSS is that tool's alone), with the C
allocator tuned as featviz tunes it for CPU renders in every tool (``--system-malloc``: in none),
the tools alternate A B / B A from repeat to repeat, and the table shows medians. A featviz run
times ``--timed-steps`` steps after a ``--warmup`` run: the first half with the ReLU gradient
redirect of a render's first steps, the rest without, and the work's step is the two medians
weighted as the work has them (``relu_redirect`` of its 64 steps). On CUDA step times are the
synchronized loop's total over its steps. Images/s is for the whole ``--steps`` work:
batch / (setup + steps x step).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Work:
    """One network and layer of the benchmark."""

    key: str
    model: str
    layer: str


WORKS: dict[str, Work] = {
    "googlenet": Work("googlenet", "torchvision/googlenet", "inception4a"),
    "resnet50": Work("resnet50", "torchvision/resnet50", "layer3"),
    "lite0": Work("lite0", "efficientnet_lite0", "_blocks.8"),
}
COMPARISONS = {"equal": 224, "default": 128}  # image size each tool optimizes
LUCENT_HINT = "pip install --no-deps torch-lucent==0.1.8 kornia==0.4.1 decorator ipython traitlets (or: make bench)"


# ---------------------------------------------------------------- worker side (one measurement per process)


def _peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (VmHWM, ru_maxrss) and peak CUDA memory, in MiB."""
    import resource

    out = {"ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["vmhwm_mib"] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _load(work: Work) -> Any:
    from featviz_cli.config import ModelSpec
    from featviz_cli.models import load_model

    return load_model(ModelSpec(name=work.model, weights="none"))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_featviz(job: dict[str, Any]) -> dict[str, Any]:
    """featviz's ``render`` on the work; the model is loaded once, outside the timing."""
    from featviz_cli.config import parse_spec
    from featviz_cli.engine import render

    work = WORKS[job["work"]]
    model, info = _load(work)
    spec_data: dict[str, Any] = {
        "model": {"name": work.model, "weights": "none"},
        "objective": {"type": "channel", "layer": work.layer, "units": list(range(job["batch"]))},
        "param": {"size": job["size"]},
        "device": job["device"],
        "precision": job["precision"],
        "seed": 0,
    }
    if job.get("compile"):
        spec_data["compile"] = True

    cpu = [0.0]
    # The work's first steps run the ReLU gradient redirect (relu_redirect, 16 by default), the
    # rest do not: time both kinds of step in one run and weight them as the work has them.
    redirect = min(parse_spec({**spec_data, "steps": 1}).relu_redirect, job["steps"])
    split = job["timed_steps"] // 2 if redirect else 0

    def timed(steps: int, redirect_steps: int) -> tuple[Any, list[float], float, float]:
        stamps: list[float] = []
        spec = parse_spec({**spec_data, "steps": steps, "relu_redirect": redirect_steps})
        t0, c0 = time.perf_counter(), time.process_time()
        result = render(spec, model=model, info=info, progress=lambda *a: stamps.append(time.perf_counter()),
                        progress_every=1)
        cpu[0] = (time.process_time() - c0) / steps
        return result, stamps, t0, time.perf_counter() - t0

    timed(job["warmup"], job["warmup"])
    profile = None
    if job.get("profile"):
        from torch.profiler import ProfilerActivity, profile as torch_profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if job["device"].startswith("cuda") else [])
        with torch_profile(activities=acts) as prof:
            result, stamps, t0, wall = timed(job["timed_steps"], split)
        profile = _profile_summary(prof, job["timed_steps"], job["device"])
    else:
        result, stamps, t0, wall = timed(job["timed_steps"], split)
    loop = result.timings["optimize_s"]
    # stamps[i] is the end of step i, so steps[i] is the time of step i + 1 (step 0 holds one-off work).
    steps = [b - a for a, b in zip(stamps[:-1], stamps[1:])]
    redirected, plain = steps[: max(split - 1, 0)], steps[max(split - 1, 0):]
    if job["device"].startswith("cuda") or len(steps) < 1:
        # CUDA progress is read one report late: only the synchronized loop's total is honest.
        step = plain_step = redirect_step = loop / job["timed_steps"]
    else:
        plain_step = statistics.median(plain or steps)
        redirect_step = statistics.median(redirected) if redirected else plain_step
        step = (redirect * redirect_step + (job["steps"] - redirect) * plain_step) / job["steps"]
    return {"step_s": step, "plain_step_s": plain_step, "redirect_step_s": redirect_step, "redirect_steps": redirect,
            "cpu_step_s": cpu[0], "setup_s": max(wall - loop, 0.0), "precision": result.precision,
            "runtime": result.runtime, "profile": profile, **_peak_memory()}


def _profile_summary(prof: Any, steps: int, device: str) -> dict[str, Any]:
    """Where a step's time goes: featviz's named ranges and the top operators, in ms per step."""
    events = prof.key_averages()
    use_cuda = device.startswith("cuda")

    def total(e: Any) -> float:
        t = getattr(e, "device_time_total", 0.0) if use_cuda else e.cpu_time_total
        return t / 1000 / steps

    def self_time(e: Any) -> float:
        t = getattr(e, "self_device_time_total", 0.0) if use_cuda else e.self_cpu_time_total
        return t / 1000 / steps

    scopes = {e.key: round(total(e), 2) for e in events if e.key.startswith("featviz.")}
    ops = sorted((e for e in events if not e.key.startswith("featviz.")), key=self_time, reverse=True)[:15]
    return {"scopes_ms": scopes, "top_ops_ms": [[e.key, round(self_time(e), 2), e.count // steps] for e in ops]}


class _LucentIPythonStub:
    """torch-lucent imports IPython only to show images in notebooks; a stub when IPython is missing."""

    @staticmethod
    def install() -> None:
        try:
            import IPython.display  # noqa: F401
        except ImportError:
            import types

            ipy = types.ModuleType("IPython")
            display = types.ModuleType("IPython.display")
            display.display = display.HTML = display.Image = lambda *a, **k: None  # type: ignore[attr-defined]
            ipy.display = display  # type: ignore[attr-defined]
            sys.modules.setdefault("IPython", ipy)
            sys.modules.setdefault("IPython.display", display)


def run_lucent(job: dict[str, Any]) -> dict[str, Any]:
    """torch-lucent's ``render_vis`` on the same module, its defaults except the image size and batch."""
    import numpy as np
    import torch

    _LucentIPythonStub.install()
    from lucent.optvis import objectives, param, render

    work = WORKS[job["work"]]
    model, _ = _load(work)
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")  # what lucent hard-codes
    model = model.to(device).eval()
    layer = work.layer.replace(".", "_")
    batch = job["batch"]
    objective = sum((objectives.channel(layer, i, batch=i) for i in range(1, batch)),
                    objectives.channel(layer, 0, batch=0))
    stamps: list[float] = []

    class TimedAdam(torch.optim.Adam):
        def step(self, closure: Any = None) -> Any:  # type: ignore[override]
            out = super().step(closure)
            stamps.append(time.perf_counter())
            return out

    cpu = [0.0]

    def timed(steps: int) -> tuple[float, float]:
        stamps.clear()
        np.random.seed(0)
        torch.manual_seed(0)
        t0, c0 = time.perf_counter(), time.process_time()
        render.render_vis(model, objective, lambda: param.image(job["size"], batch=batch),
                          optimizer=lambda p: TimedAdam(p, lr=0.05), thresholds=(steps,),
                          show_image=False, progress=False)
        _sync(str(device))
        cpu[0] = (time.process_time() - c0) / steps
        return t0, time.perf_counter() - t0

    timed(job["warmup"])
    for m in model.modules():  # render_vis leaves a hook on every module; do not time two sets
        m._forward_hooks.clear()
    t0, wall = timed(job["timed_steps"])
    loop = stamps[-1] - t0
    if device.type == "cuda":
        step = wall / job["timed_steps"]
    else:
        step = statistics.median([b - a for a, b in zip([t0] + stamps[:-1], stamps)][1:] or [loop])
    return {"step_s": step, "cpu_step_s": cpu[0], "setup_s": max(wall - loop, 0.0), "precision": "fp32",
            **_peak_memory()}


def run_floor(job: dict[str, Any]) -> dict[str, Any]:
    """The bare network truncated at the layer: forward + backward to the input only."""
    import torch

    from featviz_cli.runtime import Network, resolve_channels_last, resolve_precision, rewritten

    work = WORKS[job["work"]]
    model, info = _load(work)
    device = torch.device(job["device"] if job["device"] != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    dtype = resolve_precision(job["precision"], device)
    cl = resolve_channels_last(job.get("channels_last", "auto"), device)
    n = info.input_size
    x = torch.rand(job["batch"], 3, n, n, device=device)
    idx = torch.arange(job["batch"], device=device)
    # featviz rewrites the network before it renders (BatchNorm folded into the convolutions,
    # strided depthwise convolutions in fp32 on a bf16 CPU): the floor is that same network,
    # unless the job asks for the network as it is (a reference row).
    as_is: contextlib.AbstractContextManager[dict[str, int]] = contextlib.nullcontext({})
    with rewritten(model, [work.layer], x[:1], device, dtype) if job.get("rewrite", True) else as_is as rewrites:
        net = Network(model, [work.layer], device, dtype=dtype, channels_last=cl)
        return _time_floor(job, net, x, idx, work.layer, dtype, cl, rewrites.get("batchnorm_folded", 0))


def _time_floor(job: dict[str, Any], net: Any, x: Any, idx: Any, layer: str, dtype: Any, cl: bool,
                folded: int) -> dict[str, Any]:
    from featviz_cli.runtime import cudnn_autotune

    device = x.device

    def step() -> None:
        xi = x.detach().requires_grad_(True)
        a = net(xi)[layer]
        a[idx, idx % a.shape[1]].float().mean().backward()

    with cudnn_autotune(device):  # as featviz runs it
        for _ in range(job["warmup"]):
            step()
        _sync(job["device"])
        times = []
        t_all, c_all = time.perf_counter(), time.process_time()
        for _ in range(job["timed_steps"]):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        _sync(job["device"])
        wall = time.perf_counter() - t_all
        cpu_step = (time.process_time() - c_all) / job["timed_steps"]
    s = wall / job["timed_steps"] if device.type == "cuda" else statistics.median(times)
    return {"step_s": s, "cpu_step_s": cpu_step, "setup_s": 0.0, "precision": "fp32" if dtype is None else str(dtype).replace("torch.", ""),
            "channels_last": cl, "batchnorm_folded": folded, **_peak_memory()}


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in this process."""
    import torch

    from featviz_cli.runtime import tune_host_allocator

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    # featviz tunes the C allocator in every CPU render; the floor and torch-lucent get the same
    # process setup, so the ratios compare the engines, not the allocators (--system-malloc: none).
    allocator = tune_host_allocator()
    result = _run_tool(job)
    return {**result, "host_allocator": allocator}


def _run_tool(job: dict[str, Any]) -> dict[str, Any]:
    if job["tool"] == "lucent":
        try:
            import kornia  # noqa: F401
            import lucent  # noqa: F401
        except ImportError as e:
            return {"skipped": f"torch-lucent is not installed ({e}); {LUCENT_HINT}"}
        return run_lucent(job)
    return run_floor(job) if job["tool"].startswith("floor") else run_featviz(job)


# ---------------------------------------------------------------- driver side


def spawn(job: dict[str, Any], timeout: float, system_malloc: bool = False) -> dict[str, Any]:
    """Run ``job`` in a fresh interpreter; its last stdout line is the JSON result."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if system_malloc:
        from featviz_cli.runtime import SYSTEM_MALLOC_ENV

        env[SYSTEM_MALLOC_ENV] = "1"
    cmd = [sys.executable, "-m", "benchmarks.compare", "--worker", json.dumps(job)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {p.returncode}: {tail[:300]}"}
    return json.loads(lines[-1])


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import lucent

        info["torch_lucent"] = lucent.__version__
    except ImportError:
        info["torch_lucent"] = None
    return info


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every measurement of one repeat, in run order."""
    base = {"batch": args.batch, "steps": args.steps, "warmup": args.warmup, "timed_steps": args.timed_steps,
            "device": args.device, "threads": args.threads}
    jobs = []
    for w in args.models:
        for comp in args.comparisons:
            size = COMPARISONS[comp] if comp != "equal" else args.size
            common = {**base, "work": w, "comparison": comp, "size": size}
            fv = {**common, "tool": "featviz", "precision": args.precision}
            pair = [fv, {**common, "tool": "lucent"}] if args.lucent else [fv]
            jobs.extend(pair)
            if comp == "equal" and args.fp32_row:
                jobs.append({**common, "tool": "featviz-fp32", "precision": "fp32"})
            if comp == "equal" and args.compile_row:
                jobs.append({**common, "tool": "featviz-compile", "precision": args.precision, "compile": True})
        fl = {**base, "work": w, "comparison": "floor", "size": args.size}
        jobs.append({**fl, "tool": "floor", "precision": args.precision})
        if args.fp32_row:
            jobs.append({**fl, "tool": "floor-as-is", "precision": args.precision, "rewrite": False})
            jobs.append({**fl, "tool": "floor-fp32-nchw", "precision": "fp32", "channels_last": False, "rewrite": False})
    return jobs


def _order(jobs: list[dict[str, Any]], repeat: int) -> list[dict[str, Any]]:
    """A B in even repeats, B A in odd ones (within each model/comparison group)."""
    if repeat % 2 == 0:
        return jobs
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for j in jobs:
        groups.setdefault((j["work"], j["comparison"]), []).append(j)
    return [j for g in groups.values() for j in reversed(g)]


def summarize(results: dict[tuple[str, str, str], list[dict[str, Any]]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per (work, comparison): medians, ratios, memory."""
    def med(key: tuple[str, str, str], field: str) -> float | None:
        vals = [r[field] for r in results.get(key, []) if field in r]
        return statistics.median(vals) if vals else None

    def ips(key: tuple[str, str, str]) -> float | None:
        step, setup = med(key, "step_s"), med(key, "setup_s") or 0.0
        return args.batch / (setup + args.steps * step) if step else None

    def mem(key: tuple[str, str, str]) -> float | None:
        field = "cuda_peak_mib" if args.device.startswith("cuda") else "vmhwm_mib"
        return med(key, field) or med(key, "ru_maxrss_mib")

    def note(key: tuple[str, str, str]) -> str:
        for r in results.get(key, []):
            if "skipped" in r or "error" in r:
                return r.get("skipped") or r["error"]
        return ""

    rows = []
    for w in args.models:
        floor = med((w, "floor", "floor"), "step_s")
        for comp in args.comparisons:
            fv, lu = (w, comp, "featviz"), (w, comp, "lucent")
            f_ips, l_ips = ips(fv), ips(lu)
            f_step = med(fv, "step_s")
            precision = next((r.get("precision") for r in results.get(fv, []) if "precision" in r), "?")
            row = {"work": w, "comparison": comp, "size": COMPARISONS[comp] if comp != "equal" else args.size,
                   "featviz_ips": f_ips, "lucent_ips": l_ips, "ratio": f_ips / l_ips if f_ips and l_ips else None,
                   "featviz_step_ms": f_step and 1000 * f_step,
                   "featviz_redirect_step_ms": _ms(med(fv, "redirect_step_s")),
                   "featviz_plain_step_ms": _ms(med(fv, "plain_step_s")), "lucent_step_ms": med(lu, "step_s") and 1000 * med(lu, "step_s"),
                   "floor_step_ms": floor and 1000 * floor, "floor_ratio": f_step / floor if f_step and floor else None,
                   "featviz_mem_mib": mem(fv), "lucent_mem_mib": mem(lu), "precision": precision,
                   "cpu_ratio": _div(med(lu, "cpu_step_s"), med(fv, "cpu_step_s")),
                   "cpu_floor_ratio": _div(med(fv, "cpu_step_s"), med((w, "floor", "floor"), "cpu_step_s")),
                   "notes": "; ".join(filter(None, [note(fv), note(lu)]))}
            if comp == "equal":
                for extra in ("featviz-fp32", "featviz-compile"):
                    s = med((w, comp, extra), "step_s")
                    if s:
                        row[f"{extra}_ips"] = ips((w, comp, extra))
                        row[f"{extra}_step_ms"] = 1000 * s
                for extra in ("floor-as-is", "floor-fp32-nchw"):
                    fp = med((w, "floor", extra), "step_s")
                    if fp:
                        row[f"{extra.replace('-', '_')}_step_ms"] = 1000 * fp
            rows.append(row)
    return rows


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The Markdown table BENCHMARKS.md holds."""
    mem = "GPU peak MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    head = (f"| work | comparison | featviz img/s ({'/'.join(sorted({r['precision'] for r in rows}))}) | torch-lucent img/s "
            f"| ratio | featviz ms/step (redirect / after) | floor ms/step | floor ratio | {mem} featviz / lucent "
            f"| ratio, floor ratio by CPU time |")
    lines = [head, "|" + " --- |" * 10]
    for r in rows:
        lines.append(
            f"| {r['work']} | {r['comparison']} ({r['size']} px) | {_fmt(r['featviz_ips'], '.3g')} | "
            f"{_fmt(r['lucent_ips'], '.3g')} | {_fmt(r['ratio'], '.2f')}x | {_fmt(r['featviz_step_ms'], '.0f')} "
            f"({_fmt(r.get('featviz_redirect_step_ms'), '.0f')} / {_fmt(r.get('featviz_plain_step_ms'), '.0f')}) | "
            f"{_fmt(r['floor_step_ms'], '.0f')} | {_fmt(r['floor_ratio'], '.2f')} | "
            f"{_fmt(r['featviz_mem_mib'], '.0f')} / {_fmt(r['lucent_mem_mib'], '.0f')} | "
            f"{_fmt(r['cpu_ratio'], '.2f')}x, {_fmt(r['cpu_floor_ratio'], '.2f')} |"
        )
    keys = ("featviz-fp32_ips", "featviz-compile_ips", "floor_as_is_step_ms", "floor_fp32_nchw_step_ms")
    extras = [r for r in rows if any(k in r for k in keys)]
    if extras:
        lines += ["", "| work | featviz fp32 img/s | featviz fp32 ms/step | featviz compile img/s "
                  "| floor, network not rewritten, ms/step | floor fp32 NCHW not rewritten ms/step |",
                  "|" + " --- |" * 6]
        for r in extras:
            lines.append(f"| {r['work']} | {_fmt(r.get('featviz-fp32_ips'), '.3g')} | {_fmt(r.get('featviz-fp32_step_ms'), '.0f')} | "
                         f"{_fmt(r.get('featviz-compile_ips'), '.3g')} | {_fmt(r.get('floor_as_is_step_ms'), '.0f')} | "
                         f"{_fmt(r.get('floor_fp32_nchw_step_ms'), '.0f')} |")
    notes = [f"- {r['work']} {r['comparison']}: {r['notes']}" for r in rows if r["notes"]]
    return "\n".join(lines + ([""] + notes if notes else []))


def verdict(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """Which targets were missed, for the reader to look at the profile below."""
    out = []
    for r in rows:
        if r["comparison"] == "equal" and r["ratio"] is not None and r["ratio"] < 3:
            out.append(f"{r['work']}: {r['ratio']:.2f}x torch-lucent at 224 px (target 3x)")
        if r["comparison"] == "equal" and r["floor_ratio"] is not None and r["floor_ratio"] > 1.15:
            out.append(f"{r['work']}: step {r['floor_ratio']:.2f}x the floor (target 1.15x)")
        if r["featviz_mem_mib"] and r["lucent_mem_mib"] and r["featviz_mem_mib"] > r["lucent_mem_mib"]:
            out.append(f"{r['work']} {r['comparison']}: memory {r['featviz_mem_mib']:.0f} > {r['lucent_mem_mib']:.0f} MiB")
    return out


def print_profile(prof: dict[str, Any], work: str, floor_ms: float | None) -> None:
    """Where featviz's step goes, next to the floor (the bare network's forward + backward)."""
    print(f"\nProfile of featviz's step, {work} (ms per step, profiler on; 'featviz.network' is the truncated "
          "forward, 'featviz.backward' the whole backward: network, transforms, FFT):")
    scopes = prof["scopes_ms"]
    for k, v in sorted(scopes.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<22} {v:9.2f}")
    net = scopes.get("featviz.network", 0) + scopes.get("featviz.backward", 0)
    rest = sum(v for k, v in scopes.items() if k not in ("featviz.network", "featviz.backward"))
    print(f"  network forward + all backward {net:.1f} ms (floor {_fmt(floor_ms, '.1f')} ms without the profiler); "
          f"image, transforms, objective, optimizer {rest:.1f} ms")
    print("  top operators (self time, calls per step):")
    for name, ms, calls in prof["top_ops_ms"]:
        print(f"    {name[:48]:<48} {ms:9.2f}  x{calls}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="googlenet,resnet50,lite0", help="comma list of: " + ", ".join(WORKS))
    ap.add_argument("--comparisons", default="equal,default", help="comma list of: equal, default")
    ap.add_argument("--steps", type=int, default=64, help="steps of the work (images/s is for this many)")
    ap.add_argument("--batch", type=int, default=16, help="units (= images) rendered in one batch")
    ap.add_argument("--size", type=int, default=224, help="image size of the 'equal' comparison and the floor")
    ap.add_argument("--timed-steps", type=int, default=10,
                    help="steps timed per run: the first half with the ReLU redirect, the rest without (median of each)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (in a separate short run)")
    ap.add_argument("--full", action="store_true", help="time all --steps steps (timed-steps = steps)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the table shows medians (3: one disturbed run does not move a median)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    ap.add_argument("--threads", type=int, default=2, help="torch threads on the CPU (0: torch's default)")
    ap.add_argument("--precision", default="auto", help="featviz precision (auto, fp32, bf16, fp16)")
    ap.add_argument("--no-lucent", dest="lucent", action="store_false", help="skip torch-lucent")
    ap.add_argument("--no-fp32-row", dest="fp32_row", action="store_false",
                    help="skip featviz fp32 and the fp32 NCHW floor (reference rows)")
    ap.add_argument("--compile-row", action="store_true", help="also time featviz with compile: true")
    ap.add_argument("--profile", choices=["auto", "always", "never"], default="auto",
                    help="profile featviz's step (torch.profiler) and print where the time goes: auto = for the "
                    "works that miss a target")
    ap.add_argument("--system-malloc", action="store_true",
                    help="leave glibc's allocator as it is in every tool (featviz tunes it for CPU renders)")
    ap.add_argument("--quick", action="store_true", help="smoke run: batch 4, 3 timed steps, 1 repeat, 'equal' only")
    ap.add_argument("--json", default=None, help="also write all results to this JSON file")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per measurement before it is abandoned")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.timed_steps, args.warmup, args.repeats = 4, 4, 1, 1
        args.comparisons = "equal"
    if args.full:
        args.timed_steps = args.steps
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.comparisons = [c.strip() for c in args.comparisons.split(",") if c.strip()]
    for m in args.models:
        if m not in WORKS:
            ap.error(f"--models: unknown {m!r}; use {', '.join(WORKS)}")
    for c in args.comparisons:
        if c not in COMPARISONS:
            ap.error(f"--comparisons: unknown {c!r}; use equal, default")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    if args.lucent:
        try:
            import kornia  # noqa: F401
            import lucent  # noqa: F401
        except ImportError as e:
            print(f"torch-lucent is missing ({e}): featviz and the floor only. Install: {LUCENT_HINT}", file=sys.stderr)
            args.lucent = False
    info = machine()
    cmd = "python -m benchmarks.compare " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"# {cmd}\n# machine: {json.dumps(info)}\n# threads {args.threads}, batch {args.batch}, "
          f"{args.steps}-step work, {args.timed_steps} timed steps after {args.warmup}, {args.repeats} repeat(s)"
          f"\n# C allocator: {'as the system has it' if args.system_malloc else 'tuned as featviz tunes it'} in every tool"
          f"\n# load average at start: {loadavg()}", flush=True)
    jobs = plan(args)
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    t0 = time.time()
    for rep in range(args.repeats):
        for job in _order(jobs, rep):
            r = spawn(job, args.timeout, args.system_malloc)
            results.setdefault((job["work"], job["comparison"], job["tool"]), []).append(r)
            shown = f"{1000 * r['step_s']:.0f} ms/step" if "step_s" in r else (r.get("skipped") or r.get("error"))
            print(f"  [{rep + 1}/{args.repeats}] {job['work']:<9} {job['comparison']:<7} {job['tool']:<16} {shown}"
                  f"   (load {loadavg()})", file=sys.stderr, flush=True)
    rows = summarize(results, args)
    missed = verdict(rows, args)
    profiles = {}
    to_profile = args.models if args.profile == "always" else \
        [w for w in args.models if any(m.startswith(w) for m in missed)] if args.profile == "auto" else []
    for w in to_profile:
        job = {**jobs[0], "work": w, "comparison": "equal", "size": args.size, "tool": "featviz",
               "precision": args.precision, "profile": True, "timed_steps": min(args.timed_steps, 6)}
        r = spawn(job, args.timeout, args.system_malloc)
        if r.get("profile"):
            profiles[w] = r["profile"]
            floor = next((row["floor_step_ms"] for row in rows if row["work"] == w), None)
            print_profile(r["profile"], w, floor)
    print(f"\n# {time.time() - t0:.0f}s; load average at end: {loadavg()}")
    if missed:
        print("# targets missed: " + "; ".join(missed) + (" (profiles above)" if profiles else ""))
    print(table(rows, args))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": cmd, "machine": info, "rows": rows, "profiles": profiles,
                                               "raw": {"|".join(k): v for k, v in results.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
