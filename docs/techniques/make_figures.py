"""Renders and assembles the figures of docs/techniques.md.

    python docs/techniques/make_figures.py render --device cpu --threads 1 --out /tmp/fig  # the renders (busy 2-core CPU: ~45 min)
    python docs/techniques/make_figures.py compose --renders /tmp/fig                     # the small files in docs/techniques/

``render`` runs every experiment of the page with the embedded EfficientNet-Lite0; each
experiment saves its images (uint8) as ``NAME.npz`` and the figures quoted in the text as
``NAME.json`` as soon as it finishes, and a rerun skips the experiments already saved from the
same spec (so an interrupted run resumes). ``compose`` turns them into the committed figures
and ``metrics.json`` (``figures.py``). Every spec is in ``EXPERIMENTS`` (``experiments.py``): the same dicts work with
``featviz_cli.render`` or as YAML. Settings an experiment does not pin are featviz's defaults.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments import EXPERIMENTS, MODEL, ROOT, photo  # beside this script (its folder is on sys.path)

sys.path.insert(0, str(ROOT))  # benchmarks.quality: the judge and the high-frequency share of QUALITY.md


@functools.lru_cache(maxsize=1)
def _judge() -> Any:
    """EfficientNet-Lite1, which never renders here: the benchmark's judge."""
    from benchmarks.quality import Judge

    return Judge("efficientnet_lite1")


def _to_float(images: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def _activations(model: Any, info: Any, images: np.ndarray, layer: str) -> Any:
    import torch
    import torch.nn.functional as F

    from featviz_cli.models.preprocess import Preprocess
    from featviz_cli.hooks import forward_to

    device = next(model.parameters()).device
    x = _to_float(images).to(device)
    x = F.interpolate(x, size=(info.input_size, info.input_size), mode="bilinear", align_corners=False)
    with torch.no_grad():
        return forward_to(model, Preprocess(info).to(device)(x), [layer])[layer].float()


def channel_values(model: Any, info: Any, images: np.ndarray, layer: str, unit: int) -> list[float]:
    """The mean of channel ``unit`` at ``layer`` for each image (an objective term measured on its own)."""
    from featviz_cli.objectives import channel

    return [round(float(v), 2) for v in channel(layer, unit)({layer: _activations(model, info, images, layer)})]


def gram_similarity(model: Any, info: Any, images: np.ndarray, layer: str) -> float:
    """Mean pairwise cosine similarity of the images' Gram matrices at ``layer`` (what diversity lowers)."""
    import torch

    from featviz_cli.objectives import gram_cosine

    sim = gram_cosine(_activations(model, info, images, layer)).cpu()
    b = sim.shape[0]
    return round(float(sim[~torch.eye(b, dtype=torch.bool)].mean()), 4)


def photo_distances(model: Any, info: Any, images: np.ndarray, photo: np.ndarray,
                    layers: tuple[str, ...]) -> dict[str, list[float]]:
    """Per image: pixel MSE to the photo, and the relative squared distance of the activations at each of
    ``layers`` to the photo's (what ``regularizers.features`` charges for)."""
    x = images.astype(np.float64) / 255
    out = {"pixel_mse": [round(float(v), 4) for v in ((x - photo / 255) ** 2).reshape(len(x), -1).mean(1)]}
    for layer in layers:
        a = _activations(model, info, images, layer).flatten(1)
        ref = _activations(model, info, photo[None], layer).flatten(1)
        rel = (a - ref).pow(2).sum(1) / ref.pow(2).sum(1)
        out[f"distance {layer}"] = [round(float(v), 3) for v in rel]
    return out


def judged(images: np.ndarray, unit: str) -> dict[str, Any]:
    """Lite1's p(``unit``) and top-1 class on each whole image."""
    from featviz_cli.recipe import resolve_class

    judge = _judge()
    names = judge.info.class_names
    c = resolve_class(unit, names, "objective.unit")
    probs = judge.probs(_to_float(images))
    return {"lite1_p": [round(float(p[c]), 3) for p in probs],
            "lite1_top1": [names[int(p.argmax())] for p in probs]}


def measure(name: str, data: dict[str, Any], images: np.ndarray, model: Any, info: Any) -> dict[str, Any]:
    """The figures the text quotes about one experiment's images, beyond the objective's values."""
    from benchmarks.quality import high_frequency_share

    x = _to_float(images)
    m: dict[str, Any] = {"hf_share": [round(high_frequency_share(im), 4) for im in x]}
    if name.startswith("diversity"):
        m["gram_similarity"] = gram_similarity(model, info, images, "_blocks.10")
        m["channel_4"] = channel_values(model, info, images, "_blocks.10", 4)
    if name.startswith("interp"):
        m["channel_4"] = channel_values(model, info, images, "_blocks.10", 4)
        m["channel_9"] = channel_values(model, info, images, "_blocks.10", 9)
        frames = images.astype(np.float64) / 255
        m["neighbour_distance"] = round(float(np.abs(frames[1:] - frames[:-1]).mean()), 4)
    init = data["param"].get("init_image")
    if init:
        layers = ("_blocks.4", "_blocks.10") if name.startswith("accent") else ()
        m.update(photo_distances(model, info, images, photo(init, data["param"]["size"]), layers))
        if name.startswith("accent"):
            m.update(judged(images, data["objective"]["unit"]))
    return m


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
    tmp.replace(path)


def _saved(out: Path, name: str, data: dict[str, Any]) -> bool:
    """Whether ``out`` holds this experiment's renders, made from the same spec."""
    meta, arrays = out / f"{name}.json", out / f"{name}.npz"
    return meta.exists() and arrays.exists() and json.loads(meta.read_text()).get("spec") == data


def render_all(device: str, out: Path, only: list[str] | None, steps: int | None = None,
               threads: int | None = None) -> None:
    """Run the experiments; each one writes ``NAME.npz`` (its uint8 images and transparency maps) and
    ``NAME.json`` (its figures) into ``out`` when it finishes. An experiment already saved there from
    the same spec is skipped, so an interrupted run continues where it stopped."""
    import torch

    from featviz_cli.config import ModelSpec, parse_spec
    from featviz_cli.engine import render
    from featviz_cli.models import load_model

    if threads:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    model, info = load_model(ModelSpec(**MODEL))
    run = {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        run["gpu"] = torch.cuda.get_device_name(0)
    for name, data in EXPERIMENTS.items():
        if only and name not in only:
            continue
        data = json.loads(json.dumps(data))
        if steps:  # a quick check of the script itself
            data["steps"] = steps
        if _saved(out, name, data):
            print(f"{name}: saved before, skipped", flush=True)
            continue
        spec = parse_spec({**data, "device": device})
        t0, c0 = time.perf_counter(), time.process_time()
        result = render(spec, model=model, info=info)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        images = (result.images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        arrays = {"images": images}
        if result.alpha is not None:
            arrays["alpha"] = (result.alpha.numpy() * 255).round().astype(np.uint8)
        m = {"labels": result.labels, "values": [round(v, 4) for v in result.values],
             "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "description": result.description, "precision": result.precision,
             **measure(name, data, images, model, info), "run": run, "spec": data}
        _write_atomic(out / f"{name}.npz", lambda f: np.savez_compressed(f, **arrays))
        _write_atomic(out / f"{name}.json", lambda f: f.write(json.dumps(m, indent=1).encode()))
        print(f"{name} {seconds:.1f} s (CPU {cpu:.1f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render")
    r.add_argument("--device", default="auto")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--only", nargs="*")
    r.add_argument("--steps", type=int, help="Override the steps of every experiment (a quick check).")
    r.add_argument("--threads", type=int, help="torch threads (default: torch's); 1 is faster on a busy machine.")
    c = sub.add_parser("compose")
    c.add_argument("--renders", type=Path, nargs="+", required=True)
    args = parser.parse_args()
    if args.command == "render":
        render_all(args.device, args.out, args.only, args.steps, args.threads)
    else:
        from figures import compose

        compose(args.renders)


if __name__ == "__main__":
    main()
