"""Assembles the committed figures of docs/techniques.md and ``metrics.json`` from the experiments
saved by ``make_figures.py render``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from experiments import ACCENT_WEIGHT, EXPERIMENTS, HEAD_BOX, HERE, MACO_BOX, photo


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
    ``_run``, then each experiment's figures in ``EXPERIMENTS`` order with what its run did differently.

    Experiments of ``EXPERIMENTS`` in the committed file that ``metrics`` does not hold are kept as they
    are (one figure re-rendered on its own leaves the others' figures alone); then ``_run`` stays the
    committed one.
    """
    path = HERE / "metrics.json"
    old: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    kept = {k: v for k, v in old.items() if k in EXPERIMENTS and k not in metrics}
    runs = [m["run"] for m in metrics.values()]
    if kept:
        shared = old.get("_run", {})
    else:
        shared = {k: v for k, v in runs[0].items() if all(r.get(k) == v for r in runs)} if runs else {}
    doc: dict[str, Any] = {"_run": shared}
    for name in [n for n in EXPERIMENTS if n in metrics or n in kept] + sorted((set(metrics) | set(kept)) - set(EXPERIMENTS)):
        if name in kept:
            doc[name] = kept[name]
            continue
        m = {k: v for k, v in metrics[name].items() if k not in ("spec", "run")}
        own = {k: v for k, v in metrics[name]["run"].items() if shared.get(k) != v}
        doc[name] = {**m, "run": own} if own else m
    path.write_text(json.dumps(doc, indent=1) + "\n")


# ---------------------------------------------------------------- compose the committed figures


def _row(images: np.ndarray, labels: list[str] | None, size: int) -> np.ndarray:
    from featviz_cli.outputs import make_grid

    small = _small(images, size)
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
    for figure, fft, maco, box in (("maco", "deep_fft", "deep_maco", MACO_BOX),
                                   ("maco_channels", "head_fft", "head_maco", HEAD_BOX)):
        if ready(figure, fft, maco, f"{maco}_alpha"):
            canvas = r[maco]
            _save(figure, _stack([_row(r[fft], ["FFT"] + [""] * 3, size),
                                  _row(canvas, ["MACO canvas"] + [""] * 3, size),
                                  _row(_central_crop(canvas, box), ["MACO crop"] + [""] * 3, size),
                                  _row(_on_white(canvas, r[f"{maco}_alpha"]), ["MACO + alpha"] + [""] * 3, size)]))
    if ready("cppn", "cppn", "cppn_fft"):
        _save("cppn", _stack([_row(r["cppn"], ["CPPN"] + [""] * 3, size),
                              _row(r["cppn_fft"], ["FFT"] + [""] * 3, size)]))

    accents = ("photo_accent_free", "photo_accent_l2_1000", "photo_accent_l2_5000")
    if ready("photo", "photo_deepdream", *accents):
        _save("photo", _row(np.stack([photo("tests/data/chelsea.jpg", 128), r["photo_deepdream"][0],
                                      photo("tests/data/coffee.jpg", 128), *(r[n][0] for n in accents)]),
                            ["photo", "deepdream", "photo", "init_l2 0", "init_l2 1000", "init_l2 5000"], size))
    variants = (("plain", "no penalty"), ("pixels", "init_l2 1000"), ("features", f"features {ACCENT_WEIGHT:g}"),
                ("features50", "features 50"))
    if ready("accentuation", *(f"accent_{n}" for n, _ in variants), *(f"accent_{n}_alpha" for n, _ in variants)):
        cat = photo("tests/data/chelsea.jpg", 256)
        heat = [heat_map(r[f"accent_{n}_alpha"][0] / 255) for n, _ in variants]
        _save("accentuation", _stack([
            _row(np.stack([cat, *(r[f"accent_{n}"][0] for n, _ in variants)]), ["photo", *(l for _, l in variants)], 128),
            _row(np.stack([np.full_like(cat, 255), *heat]), ["", *(f"alpha: {l}" for _, l in variants)], 128)]))
    if ready("relu_redirect", "relu_off", "relu_on"):
        _save("relu_redirect", _stack([_row(r["relu_off"][:4], ["redirect 0"] + [""] * 3, size),
                                       _row(r["relu_on"][:4], ["redirect 16"] + [""] * 3, size)]))


def _central_crop(images: np.ndarray, box: float) -> np.ndarray:
    """The central square of (N, H, W, 3) images whose side is ``box`` of theirs: what one MACO crop sees."""
    side = int(round(box * images.shape[1]))
    top, left = (images.shape[1] - side) // 2, (images.shape[2] - side) // 2
    return images[:, top:top + side, left:left + side]


def _on_white(images: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 images composited over white with their (N, H, W) uint8 transparency maps."""
    a = alpha.astype(np.float64)[..., None] / 255
    return np.rint(images * a + 255 * (1 - a)).astype(np.uint8)


def _small(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 images resized to ``size`` (Lanczos)."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.LANCZOS)) for im in images])
