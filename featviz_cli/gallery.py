"""The static HTML gallery of a sweep: an index, pages of each layer's units, one page per unit.

Plain HTML and CSS with relative links, so it works opened straight from the
filesystem with no server; a few lines of inline JavaScript add keyboard navigation
(left/right: previous/next, up: the page above). Where ``featviz examples`` has written
``OUT/examples/<layer>/examples.json``, a unit's page shows its dataset examples (crops,
each linking to its full image, with their activations) beside the optimized image.

The pages are built from the manifest (``sweep.rebuild``); each page is written
atomically and only when its content changed.
"""
from __future__ import annotations

import html
import json
import posixpath
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .errors import OutputError
from .outputs import ensure_dir, safe_join, sanitize_filename, write_bytes_if_changed

GALLERY_DIR = "gallery"
INDEX_FILE = "index.html"
EXAMPLES_DIR = "examples"
EXAMPLES_FILE = "examples.json"
THUMB = 112  # thumbnail box on layer pages, CSS pixels
PREVIEW = 8  # thumbnails per layer on the index

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
header{background:#23262b;color:#ddd;padding:.5em 1em;display:flex;gap:1.2em;align-items:baseline;flex-wrap:wrap}
header a{color:#8cf}header h1{font-size:1.15em;margin:0;color:#fff}
main{padding:1em}a{color:#06c}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.cell{width:116px;text-align:center;font-size:12px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis}
.cell img,.ph{width:112px;height:112px;display:block;border:2px solid transparent;box-sizing:border-box}
.cell a:hover img,.cell a:focus img{border-color:#39f}
.ph{background:#ddd;color:#777;line-height:108px}
.px{image-rendering:pixelated}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
figure{display:inline-block;margin:0 10px 10px 0;text-align:center;font-size:12px;vertical-align:top}
figure img{display:block;margin:auto}
.strip img{width:56px;height:56px;margin-right:2px}
.unit{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
.ex img{width:96px;height:96px;object-fit:contain;background:#fff}
h2{font-size:1.05em;margin:.2em 0}h3{font-size:.95em;margin:.6em 0 .3em;color:#555}
.keys{color:#999;font-size:12px;margin-top:2em}
code{font-size:12px}
"""
_KEYS = (
    'document.addEventListener("keydown",function(e){if(e.altKey||e.ctrlKey||e.metaKey||e.shiftKey)return;'
    'var r={ArrowLeft:"prev",ArrowRight:"next",ArrowUp:"up",u:"up",Escape:"up"}[e.key];'
    "var a=r&&document.querySelector('a[rel~=\"'+r+'\"]');if(a){e.preventDefault();location.href=a.href;}});"
)


# ---------------------------------------------------------------- dataset examples (the shared contract)


def examples_rel(layer: str) -> str:
    """Where ``featviz examples`` writes a layer's examples, relative to OUT."""
    return f"{EXAMPLES_DIR}/{sanitize_filename(layer)}"


def load_examples(out: Path, layer: str) -> dict[str, Any]:
    """The layer's ``examples.json`` as a dict, or ``{}`` when there is none (or it is unreadable)."""
    path = Path(out) / examples_rel(layer) / EXAMPLES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("units"), dict) else {}


def shown_examples(out: Path, layer: str, data: dict[str, Any], unit: int) -> list[dict[str, Any]]:
    """The examples of ``unit`` the gallery shows: those whose crop exists inside the layer's examples
    directory; paths are returned relative to OUT."""
    base = Path(out) / examples_rel(layer)
    rows = []
    for kind in ("top", "bottom"):
        items = (data.get("units", {}).get(str(unit)) or {}).get(kind) or []
        for item in items if isinstance(items, list) else []:
            crop = _inside(base, item.get("crop")) if isinstance(item, dict) else None
            if crop is None or not crop.is_file():
                continue
            full = _inside(base, item.get("full"))
            rows.append({
                "kind": kind,
                "rank": item.get("rank"),
                "activation": item.get("activation"),
                "source": item.get("source"),
                "x": item.get("x"),
                "y": item.get("y"),
                "crop": crop.relative_to(Path(out).resolve()).as_posix(),
                "full": full.relative_to(Path(out).resolve()).as_posix() if full and full.is_file() else None,
            })
    return rows


def _inside(base: Path, rel: Any) -> Path | None:
    """``base/rel`` if ``rel`` is a relative path that stays inside ``base``, else None."""
    if not isinstance(rel, str) or not rel:
        return None
    try:
        return safe_join(base, rel)
    except OutputError:
        return None


# ---------------------------------------------------------------- page names and links


def layer_page_rel(layer_dir: str, page: int) -> str:
    """A layer's gallery page relative to OUT."""
    return f"{GALLERY_DIR}/{layer_dir}/page_{page:03d}.html"


def unit_page_rel(layer_dir: str, unit: int) -> str:
    """A unit's gallery page relative to OUT."""
    return f"{GALLERY_DIR}/{layer_dir}/unit_{unit:05d}.html"


def _href(page: str, target: str) -> str:
    """URL of ``target`` (relative to OUT) from the page at ``page`` (relative to OUT)."""
    return quote(posixpath.relpath(target, posixpath.dirname(page) or "."))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)


def _page(page: str, title: str, heading: str, nav: dict[str, tuple[str, str] | None], body: str) -> bytes:
    """A whole HTML page: header with the navigation links (``rel`` prev/next/up), body, key help."""
    links = []
    for rel in ("up", "prev", "next"):
        target = nav.get(rel)
        if target:
            arrow = {"up": "\u2191", "prev": "\u2190", "next": "\u2192"}[rel]
            links.append(f'<a rel="{rel}" href="{_href(page, target[0])}">{arrow} {_e(target[1])}</a>')
    up = nav.get("up")
    home = "" if page == INDEX_FILE or (up and up[0] == INDEX_FILE) else f'<a href="{_href(page, INDEX_FILE)}">index</a>'
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width\"><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head>\n<body><header><h1>{_e(heading)}</h1>{home}{''.join(links)}</header>\n"
        f"<main>\n{body}\n<p class=\"keys\">Keys: \u2190 \u2192 previous / next, \u2191 up.</p></main>"
        f"<script>{_KEYS}</script></body></html>\n"
    ).encode("utf-8")


# ---------------------------------------------------------------- the pages


def write_gallery(out: Path, record: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """Write ``index.html`` and every layer and unit page; return their paths relative to OUT."""
    out = Path(out)
    size = int(manifest["page_size"])
    layers = manifest["layers"]
    by_layer: dict[str, list[dict[str, Any]]] = {lay["layer"]: [] for lay in layers}
    for e in manifest["units"]:
        by_layer[e["layer"]].append(e)
    pages: list[tuple[str, list[dict[str, Any]], dict[str, Any], int, int]] = []
    for lay in layers:
        rows = by_layer[lay["layer"]]
        n = max(1, -(-len(rows) // size))
        for p in range(n):
            pages.append((layer_page_rel(lay["dir"], p), rows[p * size : (p + 1) * size], lay, p, n))
    page_of = {(e["layer"], e["unit"]): pg[0] for pg in pages for e in pg[1]}
    written = []
    _write(out, INDEX_FILE, _index(record, manifest, pages, by_layer))
    written.append(INDEX_FILE)
    for k, (rel, rows, lay, p, n) in enumerate(pages):
        nav = {
            "up": (INDEX_FILE, "index"),
            "prev": (pages[k - 1][0], "previous page") if k > 0 else None,
            "next": (pages[k + 1][0], "next page") if k + 1 < len(pages) else None,
        }
        _write(out, rel, _layer_page(rel, rows, lay, p, n, nav))
        written.append(rel)
    units = manifest["units"]
    dirs = {lay["layer"]: lay["dir"] for lay in layers}
    examples_meta = {lay["layer"]: load_examples(out, lay["layer"]) for lay in layers}
    for k, e in enumerate(units):
        rel = unit_page_rel(dirs[e["layer"]], e["unit"])
        nav = {"up": (page_of[(e["layer"], e["unit"])], f"{e['layer']}")}
        if k > 0:
            nav["prev"] = (unit_page_rel(dirs[units[k - 1]["layer"]], units[k - 1]["unit"]), "previous")
        if k + 1 < len(units):
            nav["next"] = (unit_page_rel(dirs[units[k + 1]["layer"]], units[k + 1]["unit"]), "next")
        _write(out, rel, _unit_page(rel, e, nav, examples_meta[e["layer"]]))
        written.append(rel)
    return written


def _write(out: Path, rel: str, data: bytes) -> None:
    if "/" in rel:
        ensure_dir(out, posixpath.dirname(rel))
    write_bytes_if_changed(safe_join(out, rel), data)


def _thumb(page: str, e: dict[str, Any], box: int) -> str:
    """An <img> of a done unit scaled into a ``box`` px square (pixelated when enlarged)."""
    w = int(e.get("width") or box)
    cls = ' class="px"' if w < box else ""
    return (f'<img{cls} src="{_href(page, e["image"])}" width="{box}" height="{box}" '
            f'alt="{_e(e["layer"])} unit {_e(e["unit"])}">')


def _index(record: dict[str, Any], manifest: dict[str, Any], pages: list[Any],
           by_layer: dict[str, list[dict[str, Any]]]) -> bytes:
    spec = record.get("spec") or {}
    model = (record.get("model") or {}).get("name", "?")
    name = spec.get("name") or f"{model} sweep"
    first = {lay["layer"]: next(p[0] for p in pages if p[2] is lay) for lay in manifest["layers"]}
    rows = []
    for lay in manifest["layers"]:
        done = [e for e in by_layer[lay["layer"]] if e["status"] == "done"][:PREVIEW]
        strip = "".join(
            f'<a href="{_href(INDEX_FILE, unit_page_rel(lay["dir"], e["unit"]))}">{_thumb(INDEX_FILE, e, 56)}</a>'
            for e in done
        )
        sheets = " ".join(f'<a href="{_href(INDEX_FILE, s)}">{i + 1}</a>' for i, s in enumerate(lay["sheets"]) if s)
        rows.append(
            f'<tr><td><a href="{_href(INDEX_FILE, first[lay["layer"]])}">{_e(lay["layer"])}</a></td>'
            f'<td>{lay["done"]} / {lay["units"]}</td><td>{lay["channels"]}</td><td>{sheets or "-"}</td>'
            f'<td class="strip">{strip}</td></tr>'
        )
    obj = spec.get("objective") or []
    kind = obj[0].get("type", "") if obj and isinstance(obj[0], dict) else ""
    facts = (f"{manifest['done']} of {manifest['total']} units done"
             + (f", {manifest['corrupt']} corrupt" if manifest.get("corrupt") else "")
             + f" &middot; model <b>{_e(model)}</b> &middot; {_e(kind)} &middot; {_e(spec.get('steps'))} steps"
             f" &middot; {_e((spec.get('param') or {}).get('size'))} px &middot; seed {_e(spec.get('seed'))}"
             f" &middot; spec <code>{_e(record['spec_hash'][:12])}</code>")
    body = (
        f"<p>{facts}</p>\n<table><tr><th>layer</th><th>done</th><th>units in layer</th><th>contact sheets</th>"
        f"<th>first units</th></tr>\n" + "\n".join(rows) + "</table>\n"
        f'<p><a href="manifest.json">manifest.json</a> &middot; <a href="sweep.json">sweep.json</a></p>'
    )
    nav = {"next": (pages[0][0], "first layer")} if pages else {}
    return _page(INDEX_FILE, f"featviz \u00b7 {name}", name, nav, body)


def _layer_page(page: str, rows: list[dict[str, Any]], lay: dict[str, Any], p: int, n: int,
                nav: dict[str, Any]) -> bytes:
    cells = []
    for e in rows:
        target = _href(page, unit_page_rel(lay["dir"], e["unit"]))
        value = f" {_fmt(e.get('objective'))}" if e["status"] == "done" else ""
        inner = _thumb(page, e, THUMB) if e["status"] == "done" else f'<div class="ph">{_e(e["status"])}</div>'
        cells.append(f'<div class="cell" title="{_e(e["label"])}"><a href="{target}">{inner}</a>'
                     f'{_e(e["label"])}<small>{_e(value)}</small></div>')
    sheet = lay["sheets"][p] if p < len(lay["sheets"]) else None
    sheet_link = f' &middot; <a href="{_href(page, sheet)}">contact sheet</a>' if sheet else ""
    done = sum(e["status"] == "done" for e in rows)
    body = (f"<p>page {p + 1} of {n} &middot; {done} of {len(rows)} units on this page done &middot; "
            f"{lay['done']} of {lay['units']} in the layer{sheet_link}</p>\n"
            f'<div class="grid">\n' + "\n".join(cells) + "\n</div>")
    return _page(page, f"featviz \u00b7 {lay['layer']} \u00b7 page {p + 1}/{n}", f"{lay['layer']}", nav, body)


def _unit_page(page: str, e: dict[str, Any], nav: dict[str, Any], examples: dict[str, Any]) -> bytes:
    title = f"{e['layer']} unit {e['label']}"
    parts: list[str] = []
    if e["status"] == "done":
        w = int(e.get("width") or 128)
        scale = max(1, 320 // w)
        cls = ' class="px"' if scale > 1 else ""
        figs = [f'<figure><img{cls} src="{_href(page, e["image"])}" width="{w * scale}" height="{w * scale}" '
                f'alt="{_e(title)}"><figcaption>optimized, objective {_e(_fmt(e.get("objective")))}</figcaption></figure>']
        for rel in e.get("snapshots") or []:
            step = rel.rsplit("_step", 1)[-1].split(".")[0].lstrip("0") or "0"
            figs.append(f'<figure><img{cls} src="{_href(page, rel)}" width="{w * scale // 2}" '
                        f'height="{w * scale // 2}" alt="step {step}"><figcaption>step {_e(step)}</figcaption></figure>')
        left = "<div>" + "".join(figs) + "</div>"
    else:
        left = f"<p>This unit is {_e(e['status'])}: not rendered yet. Rerun the sweep to finish it.</p>"
    right = []
    shown = e.get("examples") or []
    if shown:
        seen = examples.get("images_seen")
        right.append(f"<h2>Dataset examples</h2>{'<small>from ' + _e(seen) + ' images</small>' if seen is not None else ''}")
        for kind in ("top", "bottom"):
            figs = []
            for x in (s for s in shown if s["kind"] == kind):
                img = f'<img src="{_href(page, x["crop"])}" alt="{_e(kind)} example {_e(x["rank"])}">'
                if x.get("full"):
                    img = f'<a href="{_href(page, x["full"])}">{img}</a>'
                src = Path(str(x.get("source") or "")).name
                figs.append(f'<figure title="{_e(x.get("source") or "")}">{img}<figcaption>#{_e(x["rank"])} '
                            f'act {_e(_fmt(x.get("activation")))}<br>{_e(src)}</figcaption></figure>')
            if figs:
                right.append(f'<h3>{"most" if kind == "top" else "least"} activating</h3><div>{"".join(figs)}</div>')
    parts.append(f'<div class="unit">{left}<div class="ex">{"".join(right)}</div></div>')
    label = e["label"] if e["label"] != str(e["unit"]) else None
    facts = [("layer", e["layer"]), ("unit", e["unit"]), ("label", label), ("status", e["status"]),
             ("objective", _fmt(e.get("objective"))), ("steps", e.get("steps")), ("device", e.get("device")),
             ("time per unit", f"{_fmt(e.get('time_s'))} s"), ("batch", e.get("batch")), ("shard", e.get("shard")),
             ("worker", e.get("worker")), ("finished", e.get("finished")), ("sha256", e.get("sha256"))]
    table = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in facts if v is not None)
    links = f'<a href="{_href(page, e["meta"])}">metadata (JSON)</a>' if e["status"] != "pending" else ""
    if e.get("image"):
        links += f' &middot; <a href="{_href(page, e["image"])}">PNG</a>'
    parts.append(f"<table>{table}</table><p>{links}</p>")
    return _page(page, f"featviz \u00b7 {title}", title, nav, "\n".join(parts))
