"""Renders and assembles the figures of docs/techniques.md.

    python docs/techniques/make_figures.py render --device cpu --threads 1 --out /tmp/fig  # the renders (busy 2-core CPU: ~45 min)
    python docs/techniques/make_figures.py compose --renders /tmp/fig                     # the small files in docs/techniques/

``render`` runs every experiment of the page with the embedded EfficientNet-Lite0; each
experiment saves its images (uint8) as ``NAME.npz`` and the figures quoted in the text as
``NAME.json`` as soon as it finishes, and a rerun skips the experiments already saved from the
same spec (so an interrupted run resumes). ``compose`` turns them into the committed figures
and ``metrics.json``. Every spec is in ``EXPERIMENTS`` below: the same dicts work with
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))  # benchmarks.quality: the judge and the high-frequency share of QUALITY.md
MODEL = {"name": "efficientnet_lite0"}
STEPS = 256


def _spec(objective: Any, **rest: Any) -> dict[str, Any]:
    spec = {"model": MODEL, "objective": objective, "param": {"size": 128}, "steps": STEPS, "seed": 0,
            "precision": "fp32"}
    spec.update(rest)
    return spec


def _pair(param: dict[str, Any], optimizer: dict[str, Any] | None = None) -> dict[str, Any]:
    """One channel and one class, each restricted to its batch element; Adam at the default rate unless
    ``optimizer`` is given."""
    terms = [{"type": "channel", "layer": "_blocks.10", "unit": 4, "batch": 0},
             {"type": "logit", "unit": "goldfish", "batch": 1}]
    rest = {"optimizer": optimizer} if optimizer else {}
    return _spec(terms, param={"size": 128, "batch": 2, **param}, **rest)


def _diverse(weight: float) -> dict[str, Any]:
    terms = [{"type": "channel", "layer": "_blocks.10", "unit": 4}]
    if weight:
        terms.append({"type": "diversity", "layer": "_blocks.10", "weight": weight})
    return _spec(terms, param={"size": 128, "batch": 4})


def _interp(shared: bool, align: float) -> dict[str, Any]:
    terms = [{"type": "channel", "layer": "_blocks.10", "unit": 4}, {"type": "channel", "layer": "_blocks.10", "unit": 9}]
    if align:
        terms.append({"type": "alignment", "layer": "_blocks.6", "weight": align})
    return _spec(terms, interpolate={"frames": 8, "shared": shared})


DEEP = {"type": "channel", "layer": "_blocks.14", "units": [7, 31, 64, 100]}
ACCENT_WEIGHT = 10.0  # too weak with the 1/f^1.5 default: configs/accentuation.yaml uses 50 (features50)
MACO_BOX = 0.35  # crop side / canvas side: 640 * 0.35 = 224 px, the model's input
MACO_TRANSFORMS = [{"type": "crops", "count": 4, "box": [MACO_BOX, MACO_BOX], "centres": "uniform"},
                   {"type": "noise", "std": 0.04}]

EXPERIMENTS: dict[str, dict[str, Any]] = {
    # Q3: what the decorrelated space does, at equal steps (and the sign step's high frequencies)
    "param_pixel_rgb": _pair({"type": "pixel", "decorrelate": False}),
    "param_pixel_decorrelated": _pair({"type": "pixel", "decorrelate": True}),
    "param_fft_rgb": _pair({"type": "fft", "decorrelate": False}),
    "param_fft_decorrelated": _pair({"type": "fft", "decorrelate": True}),
    "param_fft_decay1": _pair({"type": "fft", "decorrelate": True, "decay_power": 1.0}),  # Lucid's 1/f
    "param_pixel_sign": _pair({"type": "pixel", "decorrelate": False}, {"type": "sign", "lr": 0.01}),
    "param_fft_sign": _pair({"type": "fft", "decorrelate": True}, {"type": "sign", "lr": 0.01}),
    **{f"param_pixel_sgd_{lr}": _pair({"type": "pixel", "decorrelate": False}, {"type": "sgd", "lr": float(lr)})
       for lr in (100, 1000, 10000)},
    # Q2: basis directions (channels) against random directions of the same layer
    "basis": _spec({"type": "channel", "layer": "_blocks.10", "units": [0, 1, 2, 3]}),
    "random": _spec([{"type": "direction", "layer": "_blocks.10", "random_seed": s, "batch": s - 1}
                     for s in (1, 2, 3, 4)], param={"size": 128, "batch": 4}),
    # Q1: diverse examples are one joint optimization of a batch
    "diversity_0": _diverse(0.0),
    "diversity_2": _diverse(2.0),
    "diversity_8": _diverse(8.0),
    "diversity_32": _diverse(32.0),
    # interpolation
    "interp_shared_align": _interp(True, 1.0),
    "interp_shared_align10": _interp(True, 10.0),
    "interp_shared_align01": _interp(True, 0.1),
    "interp_shared_align003": _interp(True, 0.03),
    "interp_shared": _interp(True, 0.0),
    "interp_free": _interp(False, 0.0),
    # MACO against the FFT default on a deep layer, equal steps (128: rendered on a CPU)
    "deep_fft": _spec(DEEP, steps=128),
    "deep_maco": _spec(DEEP, param={"type": "maco", "size": 640}, transforms=MACO_TRANSFORMS,
                       optimizer={"type": "nadam", "lr": 1.0}, steps=128, output={"alpha": True}),
    # CPPN
    "cppn": _spec({"type": "channel", "layer": "_blocks.8", "units": [3, 17, 42, 64]},
                  param={"type": "cppn", "size": 128}, optimizer={"type": "adam", "lr": 0.005}, steps=512),
    "cppn_fft": _spec({"type": "channel", "layer": "_blocks.8", "units": [3, 17, 42, 64]}, steps=512),
    # photos
    "photo_deepdream": _spec({"type": "deepdream", "layer": "_blocks.5"},
                             param={"size": 128, "init_image": "tests/data/chelsea.jpg"},
                             transforms=[{"type": "jitter", "pixels": 4}], steps=64),
    "photo_accent_free": _spec({"type": "logit", "unit": "goldfish"},
                               param={"size": 128, "init_image": "tests/data/coffee.jpg"}, steps=128),
    "photo_accent_held": _spec({"type": "logit", "unit": "goldfish"},
                               param={"size": 128, "init_image": "tests/data/coffee.jpg"},
                               regularizers={"init_l2": 20.0}, steps=128),
    # feature accentuation: configs/accentuation.yaml and its variants (256 px, CPU bf16 as the config runs)
    **{f"accent_{name}": _spec({"type": "logit", "unit": "tiger"},
                               param={"size": 256, "init_image": "tests/data/chelsea.jpg"}, regularizers=reg,
                               steps=128, precision="auto", output={"alpha": True})
       for name, reg in (("plain", {}), ("pixels", {"init_l2": 1000.0}),
                         ("features", {"features": {"layer": "_blocks.4", "weight": ACCENT_WEIGHT}}),
                         ("features50", {"features": {"layer": "_blocks.4", "weight": 50.0}}))},
    **{f"photo_accent_l2_{w}": _spec({"type": "logit", "unit": "goldfish"},
                                     param={"size": 128, "init_image": "tests/data/coffee.jpg"},
                                     regularizers={"init_l2": float(w)}, steps=128) for w in (200, 1000, 5000)},
    # redirected ReLU: a ReLU6 output layer whose channels are off for the grey start
    "relu_off": _spec({"type": "channel", "layer": "_blocks.12._act1", "units": list(range(8))},
                      relu_redirect=0, steps=128),
    "relu_on": _spec({"type": "channel", "layer": "_blocks.12._act1", "units": list(range(8))},
                     relu_redirect=16, steps=128),
    # ... and a block output (no ReLU after it), where the redirect should change little
    **{f"relu_block_{n}": _spec({"type": "channel", "layer": "_blocks.10", "units": list(range(8))},
                                relu_redirect=n, steps=64) for n in (0, 16)},
}


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


def _photo(path: str, size: int) -> np.ndarray:
    from featviz_cli.images import load_image

    return (load_image(ROOT / path, size).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


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
        m.update(photo_distances(model, info, images, _photo(init, data["param"]["size"]), layers))
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


def load_renders(folders: list[Path]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every saved experiment of ``folders`` (later folders win): images by name (``NAME_alpha`` for the
    transparency maps) and figures by name."""
    arrays: dict[str, np.ndarray] = {}
    metrics: dict[str, Any] = {}
    for folder in folders:
        for meta in sorted(folder.glob("*.json")):
            npz = meta.with_suffix(".npz")
            if not npz.exists():
                continue
            with np.load(npz) as saved:
                arrays[meta.stem] = saved["images"]
                if "alpha" in saved:
                    arrays[f"{meta.stem}_alpha"] = saved["alpha"]
            metrics[meta.stem] = json.loads(meta.read_text())
    return arrays, metrics


def write_metrics(metrics: dict[str, Any]) -> None:
    """``metrics.json`` beside the figures: what all runs share (device, torch, threads) once under
    ``_run``, then each experiment's figures in ``EXPERIMENTS`` order with what its run did differently."""
    runs = [m["run"] for m in metrics.values()]
    shared = {k: v for k, v in runs[0].items() if all(r.get(k) == v for r in runs)} if runs else {}
    doc: dict[str, Any] = {"_run": shared}
    for name in [n for n in EXPERIMENTS if n in metrics] + sorted(set(metrics) - set(EXPERIMENTS)):
        m = {k: v for k, v in metrics[name].items() if k not in ("spec", "run")}
        own = {k: v for k, v in metrics[name]["run"].items() if k not in shared}
        doc[name] = {**m, "run": own} if own else m
    (HERE / "metrics.json").write_text(json.dumps(doc, indent=1) + "\n")


# ---------------------------------------------------------------- compose the committed figures


def _row(images: np.ndarray, labels: list[str] | None, size: int) -> np.ndarray:
    from PIL import Image

    from featviz_cli.outputs import make_grid

    small = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.LANCZOS))
                      for im in images])
    return make_grid(small, labels, ncols=len(small))


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded, axis=0)


def _save(name: str, image: np.ndarray) -> None:
    """PNG when it is small enough, else a JPEG (noisy renders compress badly as PNG)."""
    import io

    from PIL import Image

    im = Image.fromarray(image)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    if buf.tell() <= 60_000:
        (HERE / f"{name}.png").write_bytes(buf.getvalue())
        return
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85, optimize=True)
    (HERE / f"{name}.jpg").write_bytes(buf.getvalue())


def compose(renders: list[Path], size: int = 96) -> None:
    """Assemble the figures of the page and ``metrics.json`` from the saved experiments of ``renders``
    (folders written by ``render``; later ones win) into docs/techniques/.

    A figure whose renders are not all there is skipped (and said so), so that one figure can be
    re-rendered on its own (``render --only ...``).
    """
    from featviz_cli.outputs import gif_bytes, heat_map

    r, metrics = load_renders(renders)
    write_metrics(metrics)

    def ready(figure: str, *names: str) -> bool:
        gone = [n for n in names if n not in r]
        if gone:
            print(f"{figure}: skipped, no renders of {', '.join(gone)}")
        return not gone

    param_names = [("param_pixel_rgb", "pixel Adam"), ("param_pixel_sgd_100", "pixel SGD"),
                   ("param_pixel_sign", "pixel sign"), ("param_pixel_decorrelated", "pix+dec Adam"),
                   ("param_fft_rgb", "FFT Adam"), ("param_fft_decay1", "FFT+dec 1/f"),
                   ("param_fft_decorrelated", "FFT+dec Adam"), ("param_fft_sign", "FFT+dec sign")]
    if ready("parameterizations", *(n for n, _ in param_names)):
        rows = [_row(np.stack([r[n][k] for n, _ in param_names]), [lab for _, lab in param_names], 84)
                for k in (0, 1)]
        _save("parameterizations", _stack(rows))
    if ready("directions", "basis", "random"):
        _save("directions", _stack([_row(r["basis"], [f"channel {u}" for u in range(4)], size),
                                    _row(r["random"], [f"random {s}" for s in range(1, 5)], size)]))
    if ready("diversity", "diversity_0", "diversity_8", "diversity_32"):
        _save("diversity", _stack([_row(r[n], [f"weight {n.split('_')[1]}"] + [""] * 3, 88)
                                   for n in ("diversity_0", "diversity_8", "diversity_32")]))
    if ready("interpolation", "interp_free", "interp_shared_align01"):
        _save("interpolation", _stack([_row(r[n], [label] + [""] * 7, 80) for n, label in
                                       (("interp_free", "unshared"), ("interp_shared_align01", "shared+align"))]))
        gif = gif_bytes(_small(r["interp_shared_align01"], 72), duration_ms=200, pingpong=False)
        (HERE / "interpolation.gif").write_bytes(gif)
    if ready("maco", "deep_fft", "deep_maco", "deep_maco_alpha"):
        canvas = r["deep_maco"]
        side = int(round(MACO_BOX * canvas.shape[1]))
        crops = canvas[:, (canvas.shape[1] - side) // 2:][:, :side, (canvas.shape[2] - side) // 2:][:, :, :side]
        _save("maco", _stack([_row(r["deep_fft"], ["FFT"] + [""] * 3, size),
                              _row(canvas, ["MACO canvas"] + [""] * 3, size),
                              _row(crops, ["MACO crop"] + [""] * 3, size),
                              _row(_on_white(canvas, r["deep_maco_alpha"]), ["MACO + alpha"] + [""] * 3, size)]))
    if ready("cppn", "cppn", "cppn_fft"):
        _save("cppn", _stack([_row(r["cppn"], ["CPPN"] + [""] * 3, size),
                              _row(r["cppn_fft"], ["FFT"] + [""] * 3, size)]))

    accents = ("photo_accent_free", "photo_accent_l2_1000", "photo_accent_l2_5000")
    if ready("photo", "photo_deepdream", *accents):
        _save("photo", _row(np.stack([_photo("tests/data/chelsea.jpg", 128), r["photo_deepdream"][0],
                                      _photo("tests/data/coffee.jpg", 128), *(r[n][0] for n in accents)]),
                            ["photo", "deepdream", "photo", "init_l2 0", "init_l2 1000", "init_l2 5000"], size))
    variants = (("plain", "no penalty"), ("pixels", "init_l2 1000"), ("features", f"features {ACCENT_WEIGHT:g}"),
                ("features50", "features 50"))
    if ready("accentuation", *(f"accent_{n}" for n, _ in variants), *(f"accent_{n}_alpha" for n, _ in variants)):
        cat = _photo("tests/data/chelsea.jpg", 256)
        heat = [heat_map(r[f"accent_{n}_alpha"][0] / 255) for n, _ in variants]
        _save("accentuation", _stack([
            _row(np.stack([cat, *(r[f"accent_{n}"][0] for n, _ in variants)]), ["photo", *(l for _, l in variants)], 128),
            _row(np.stack([np.full_like(cat, 255), *heat]), ["", *(f"alpha: {l}" for _, l in variants)], 128)]))
    if ready("relu_redirect", "relu_off", "relu_on"):
        _save("relu_redirect", _stack([_row(r["relu_off"][:4], ["redirect 0"] + [""] * 3, size),
                                       _row(r["relu_on"][:4], ["redirect 16"] + [""] * 3, size)]))


def _on_white(images: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 images composited over white with their (N, H, W) uint8 transparency maps."""
    a = alpha.astype(np.float64)[..., None] / 255
    return np.rint(images * a + 255 * (1 - a)).astype(np.uint8)


def _small(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.LANCZOS)) for im in images])


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
        compose(args.renders)


if __name__ == "__main__":
    main()
