"""The contexts of the gallery's pages: the model index, a layer's page, a unit's page (``gallery`` writes them).

Each function turns manifest entries into what its template (``gallery_index.html``,
``gallery_layer.html``, ``gallery_unit.html``) shows, with every link relative to the page.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ..html import number
from .gallery import (INDEX_FILE, PREVIEW, THUMB, Layer, Nav, Site, href, page_bytes,
                      unit_page_rel)
from .units import file_kind

UNIT_IMAGE = 256  # CSS pixels of a render on a unit page (an integer multiple of small images)
HIST_W, HIST_H = 360, 96  # the activation histogram's plot area, CSS pixels


def thumb(page: str, e: dict[str, Any], box: int, rel: str | None = None) -> dict[str, Any]:
    """A done unit's image (or its image ``rel``) scaled into a ``box`` px square (pixelated when
    enlarged), for the ``thumb`` macro."""
    return {"src": href(page, rel or e["image"]), "box": box, "px": int(e.get("width") or box) < box,
            "alt": f"{e['layer']} unit {e['unit']}"}


def _done(e: dict[str, Any]) -> bool:
    return e["status"] == "done"


def _flag(e: dict[str, Any]) -> bool:
    return bool((e.get("faithfulness") or {}).get("flagged"))


# ---------------------------------------------------------------- the index


def index_page(out: Path, site: Site, record: dict[str, Any], manifest: dict[str, Any]) -> bytes:
    """``index.html``: the sweep's facts, its techniques, and a row per layer."""
    spec = record.get("spec") or {}
    model = (record.get("model") or {}).get("name", "?")
    name = spec.get("name") or f"{model} sweep"
    first = site.techniques[0]
    rows = []
    for layer in site.layers:
        done = [e for e in layer.rows[first] if _done(e)][:PREVIEW]
        measured = [e["faithfulness"] for tech in site.techniques for e in layer.rows[tech] if e.get("faithfulness")]
        ratios = [m["ratio"] for m in measured if isinstance(m.get("ratio"), (int, float))]
        rows.append({
            "layer": layer.name, "href": href(INDEX_FILE, site.layer_page(layer, first, 0)),
            "channels": layer.channels, "units": len(layer.units()),
            "techniques": [{"title": site.titles[t], "done": layer.summaries[t]["done"],
                            "href": href(INDEX_FILE, site.layer_page(layer, t, 0)),
                            "sheets": [{"number": i + 1, "href": href(INDEX_FILE, s)}
                                       for i, s in enumerate(layer.summaries[t]["sheets"]) if s]}
                           for t in site.techniques],
            "thumbs": [{"href": href(INDEX_FILE, unit_page_rel(layer.dir, e["unit"])),
                        "thumb": thumb(INDEX_FILE, e, 56)} for e in done],
            "measured": len(measured), "flagged": sum(bool(m.get("flagged")) for m in measured),
            "ratio": number(statistics.median(ratios)) if ratios else None,
        })
    obj = spec.get("objective") or []
    nav: Nav = {"next": (site.layer_page(site.layers[0], first, 0), "first layer")} if site.layers else {}
    return page_bytes(
        "gallery_index.html", INDEX_FILE, f"featviz \u00b7 {name}", name, nav, rows=rows,
        done=manifest["done"], total=manifest["total"], corrupt=manifest.get("corrupt"), model=model,
        kind=obj[0].get("type", "") if obj and isinstance(obj[0], dict) else "", steps=spec.get("steps"),
        size=(spec.get("param") or {}).get("size"), seed=spec.get("seed"), spec_hash=record["spec_hash"][:12],
        techniques=[site.titles[t] for t in site.techniques if t is not None],
        measured=any(r["measured"] for r in rows), layer=None, caricatures=_caricatures(out),
    )


def _caricatures(out: Path) -> dict[str, Any] | None:
    """The caricatures of a sample photo per layer (``featviz caricature`` into this directory), for the index."""
    from ..directions.layout import read_caricatures

    doc = read_caricatures(out)
    if not doc or not doc["layers"]:
        return None
    return {"photo": str(doc.get("photo") or "photo"), "photo_src": href(INDEX_FILE, str(doc.get("photo_image") or "")),
            "layers": [{"layer": str(e.get("layer")), "src": href(INDEX_FILE, str(e["image"])),
                        "similarity": number(e.get("similarity"))} for e in doc["layers"]]}


# ---------------------------------------------------------------- a layer's page


def layer_page(page: str, site: Site, layer: Layer, tech: str | None, p: int, nav: Nav) -> bytes:
    """One page of a layer's units as one technique renders them, with tabs for the other techniques."""
    size = site.page_size
    rows = layer.rows[tech][p * size : (p + 1) * size]
    n = site.pages(layer)
    cells = [{
        "label": e["label"], "status": e["status"], "href": href(page, unit_page_rel(layer.dir, e["unit"])),
        "thumb": thumb(page, e, THUMB) if _done(e) else None,
        "value": f" {number(e.get('objective'))}" if _done(e) else "",
        "more": len(e.get("images") or []) - 1 if _done(e) else 0, "flagged": _flag(e),
    } for e in rows]
    summary = layer.summaries[tech]
    sheet = summary["sheets"][p] if p < len(summary["sheets"]) else None
    tabs = [{"title": site.titles[t], "href": href(page, site.layer_page(layer, t, p)), "current": t == tech}
            for t in site.techniques] if len(site.techniques) > 1 else []
    title = f"{layer.name} \u00b7 {site.titles[tech]}" if tech else layer.name
    return page_bytes(
        "gallery_layer.html", page, f"featviz \u00b7 {title} \u00b7 page {p + 1}/{n}", title, nav,
        cells=cells, page_number=p + 1, pages=n, done=sum(_done(e) for e in rows), tabs=tabs,
        layer_done=summary["done"], layer_units=summary["units"], sheet=href(page, sheet) if sheet else None,
        layer=layer.name,
    )


# ---------------------------------------------------------------- a unit's page


def unit_page(page: str, site: Site, layer: Layer, j: int, nav: Nav, examples: dict[str, Any]) -> bytes:
    """A unit: every technique's renders and faithfulness, its dataset examples and activation histogram."""
    first = layer.rows[site.techniques[0]][j]
    title = f"{layer.name} unit {first['label']}"
    renders = [_technique(page, site, layer, tech, j) for tech in site.techniques]
    shown = [{**x, "crop": href(page, x["crop"]), "full": href(page, x["full"]) if x.get("full") else None,
              "source": x.get("source") or "", "name": Path(str(x.get("source") or "")).name,
              "activation": number(x.get("activation"))} for x in first.get("examples") or []]
    stats = (((examples.get("stats") or {}).get("units") or {}).get(str(first["unit"])))
    marks = [(f"{r['title'] or 'render'}", r["faith"]["activation"]) for r in renders
             if r["faith"] and isinstance(r["faith"].get("activation"), (int, float))]
    label = first["label"] if first["label"] != str(first["unit"]) else None
    e = first
    facts = [("layer", layer.name), ("unit", e["unit"]), ("label", label), ("status", e["status"]),
             ("objective", number(e.get("objective"))), ("steps", e.get("steps")), ("device", e.get("device")),
             ("time per unit", f"{number(e.get('time_s'))} s"), ("batch", e.get("batch")), ("shard", e.get("shard")),
             ("worker", e.get("worker")), ("finished", e.get("finished")), ("sha256", e.get("sha256"))]
    return page_bytes(
        "gallery_unit.html", page, f"featviz \u00b7 {title}", title, nav, renders=renders, examples=shown,
        images_seen=examples.get("images_seen"), histogram=histogram(stats, marks, examples.get("k")),
        facts=[(k, number(v)) for k, v in facts if v is not None], layer=layer.name,
        several=len(site.techniques) > 1,
    )


def _technique(page: str, site: Site, layer: Layer, tech: str | None, j: int) -> dict[str, Any]:
    """One technique's part of a unit's page: its images (each with snapshots and maps), values, links."""
    e = layer.rows[tech][j]
    images = []
    if _done(e):
        w = int(e.get("width") or 128)
        scale = max(1, UNIT_IMAGE // w) if w < UNIT_IMAGE else 1
        size = w * scale if w < UNIT_IMAGE else UNIT_IMAGE
        values = e.get("objectives") or [e.get("objective")]
        for k, rel in enumerate(e.get("images") or [e["image"]]):
            snaps = [{"src": href(page, s), "step": file_kind(s)[1]} for s in e.get("snapshots") or []
                     if file_kind(s)[0] == k]
            maps = [{"src": href(page, m), "name": file_kind(m)[2]} for m in e.get("maps") or [] if file_kind(m)[0] == k]
            images.append({"src": href(page, rel), "size": size, "px": scale > 1, "snapshots": snaps, "maps": maps,
                           "objective": number(values[k] if k < len(values) else None)})
    p = j // site.page_size
    summary = layer.summaries[tech]
    sheet = summary["sheets"][p] if p < len(summary["sheets"]) else None
    return {"id": tech or "render", "title": site.titles[tech], "status": e["status"], "images": images,
            "objective": number(e.get("objective")), "faith": faith_view(e.get("faithfulness")),
            "meta": href(page, e["meta"]) if e["status"] != "pending" else None,
            "png": href(page, e["image"]) if e.get("image") else None,
            "layer_page": href(page, site.layer_page(layer, tech, p)), "sheet": href(page, sheet) if sheet else None,
            "problem": e.get("problem")}


def faith_view(f: dict[str, Any] | None) -> dict[str, Any] | None:
    """A unit's faithfulness as the page shows it: the numbers formatted, the flag, the per-layer rows."""
    if not f:
        return None
    return {**f, "ratio_text": number(f.get("ratio")), "path_text": number(f.get("path")),
            "rows": [{**r, **{k: number(r.get(k)) for k in ("render", "top", "random", "score")}}
                     for r in f.get("layers") or []]}


def histogram(stats: dict[str, Any] | None, marks: list[tuple[str, float]], k: Any = None) -> dict[str, Any] | None:
    """The bars of a unit's activation histogram (an inline SVG), with a line per render's activation."""
    hist = (stats or {}).get("hist") or {}
    counts = hist.get("counts") or []
    if not counts or not stats:
        return None
    n, top = len(counts), max(counts) or 1
    lo, width = float(hist["start"]), float(hist["width"])
    hi = lo + n * width
    bw = HIST_W / n
    bars = [{"x": round(i * bw, 2), "w": round(max(1.0, bw - 1), 2), "h": round(HIST_H * c / top, 2),
             "y": round(HIST_H - HIST_H * c / top, 2), "count": c, "from": number(lo + i * width),
             "to": number(lo + (i + 1) * width)} for i, c in enumerate(counts) if c]
    lines = []
    for row, (label, value) in enumerate(marks):  # each label on its own row, so close lines stay readable
        x = (value - lo) / (hi - lo) * HIST_W if hi > lo else HIST_W
        lines.append({"x": round(min(max(x, 0.0), HIST_W), 2), "beyond": x > HIST_W, "label": label,
                      "value": number(float(value)), "y": HIST_H + 26 + 12 * row})
    return {"w": HIST_W, "h": HIST_H, "bars": bars, "lines": lines, "lo": number(lo), "hi": number(hi),
            "height": HIST_H + 34 + 12 * max(0, len(lines) - 1),
            "count": stats.get("count"), "mean": number(stats.get("mean")), "std": number(stats.get("std")),
            "min": number(stats.get("min")), "max": number(stats.get("max")), "k": k}


__all__ = ["faith_view", "histogram", "index_page", "layer_page", "thumb", "unit_page"]
