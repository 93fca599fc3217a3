"""The static HTML gallery of a sweep: an index, pages of each layer's units, one page per unit.

Plain HTML and CSS with relative links, so it works opened straight from the
filesystem with no server; a few lines of inline JavaScript add keyboard navigation
(left/right: previous/next, up: the page above). Where ``featviz examples`` has written
``OUT/examples/<layer>/examples.json``, a unit's page shows its dataset examples (crops,
each linking to its full image, with their activations) beside the optimized image.

The pages are built from the manifest (``sweep.rebuild``) with the templates
``gallery_*.html``; each page is written atomically and only when its content changed.
"""
from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import OutputError
from ..examples.layout import EXAMPLES_JSON, layer_rel, read_examples
from ..html import number, render
from ..outputs import ensure_dir, safe_join, write_bytes_if_changed

GALLERY_DIR = "gallery"
INDEX_FILE = "index.html"
THUMB = 112  # thumbnail box on layer pages, CSS pixels
PREVIEW = 8  # thumbnails per layer on the index
ARROWS = {"up": "\u2191", "prev": "\u2190", "next": "\u2192"}

Nav = dict[str, tuple[str, str] | None]  # rel -> (target relative to OUT, text)


# ---------------------------------------------------------------- dataset examples (the shared contract)


def load_examples(out: Path, layer: str) -> dict[str, Any]:
    """The layer's ``examples.json`` as a dict, or ``{}`` when there is none (or it is unreadable)."""
    return read_examples(Path(out) / layer_rel(layer) / EXAMPLES_JSON)


def shown_examples(out: Path, layer: str, data: dict[str, Any], unit: int) -> list[dict[str, Any]]:
    """The examples of ``unit`` the gallery shows: those whose crop exists inside the layer's examples
    directory; paths are returned relative to OUT."""
    base = Path(out) / layer_rel(layer)
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
    return quote(relative(target, posixpath.dirname(page)))


def relative(target: str, start: str) -> str:
    """``posixpath.relpath(target, start)`` for paths relative to OUT, by their parts alone: relpath
    asks for the working directory twice a call, a tenth of a large gallery's time."""
    t, s = target.split("/"), start.split("/") if start else []
    if any(part in ("", ".", "..") for part in t + s):
        return posixpath.relpath(target, start or ".")
    common = 0
    while common < min(len(t), len(s)) and t[common] == s[common]:
        common += 1
    return "/".join([".."] * (len(s) - common) + t[common:]) or "."


def _links(page: str, nav: Nav) -> list[dict[str, str | None]]:
    """The header's links: ``index`` (unless up is the index), then up/prev/next with their ``rel``."""
    up = nav.get("up")
    links: list[dict[str, str | None]] = []
    if not (page == INDEX_FILE or (up and up[0] == INDEX_FILE)):
        links.append({"rel": None, "href": _href(page, INDEX_FILE), "text": "index"})
    for rel in ("up", "prev", "next"):
        target = nav.get(rel)
        if target:
            links.append({"rel": rel, "href": _href(page, target[0]), "text": f"{ARROWS[rel]} {target[1]}"})
    return links


def _page(template: str, page: str, title: str, heading: str, nav: Nav, **context: Any) -> bytes:
    """A whole gallery page from ``template``: the header's links, the title and heading, the content."""
    return render(template, title=title, heading=heading, links=_links(page, nav), **context).encode("utf-8")


def _thumb(page: str, e: dict[str, Any], box: int) -> dict[str, Any]:
    """A done unit's image scaled into a ``box`` px square (pixelated when enlarged), for the ``thumb`` macro."""
    return {"src": _href(page, e["image"]), "box": box, "px": int(e.get("width") or box) < box,
            "alt": f"{e['layer']} unit {e['unit']}"}


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
    write = _Writer(out)
    written = []
    write(INDEX_FILE, _index(record, manifest, pages, by_layer, _caricatures(out)))
    written.append(INDEX_FILE)
    for k, (rel, rows, lay, p, n) in enumerate(pages):
        nav: Nav = {
            "up": (INDEX_FILE, "index"),
            "prev": (pages[k - 1][0], "previous page") if k > 0 else None,
            "next": (pages[k + 1][0], "next page") if k + 1 < len(pages) else None,
        }
        write(rel, _layer_page(rel, rows, lay, p, n, nav))
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
        write(rel, _unit_page(rel, e, nav, examples_meta[e["layer"]]))
        written.append(rel)
    return written


class _Writer:
    """Writes pages under OUT, each only when its content changed; each directory is created and
    checked to be inside OUT once (a page is replaced by a rename, which never follows a link)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.dirs: dict[str, Path] = {}

    def __call__(self, rel: str, data: bytes) -> None:
        parent, name = posixpath.split(rel)
        if name in ("", ".", ".."):
            raise OutputError(f"refusing to write the gallery page {rel!r}: not a file name inside {self.out}")
        if parent not in self.dirs:
            self.dirs[parent] = ensure_dir(self.out, parent) if parent else safe_join(self.out, name).parent
        write_bytes_if_changed(self.dirs[parent] / name, data)


def _caricatures(out: Path) -> dict[str, Any] | None:
    """The caricatures of a sample photo per layer (``featviz caricature`` into this directory), for the index."""
    from ..directions.layout import read_caricatures

    doc = read_caricatures(out)
    if not doc or not doc["layers"]:
        return None
    return {"photo": str(doc.get("photo") or "photo"), "photo_src": _href(INDEX_FILE, str(doc.get("photo_image") or "")),
            "layers": [{"layer": str(e.get("layer")), "src": _href(INDEX_FILE, str(e["image"])),
                        "similarity": number(e.get("similarity"))} for e in doc["layers"]]}


def _index(record: dict[str, Any], manifest: dict[str, Any], pages: list[Any],
           by_layer: dict[str, list[dict[str, Any]]], caricatures: dict[str, Any] | None = None) -> bytes:
    spec = record.get("spec") or {}
    model = (record.get("model") or {}).get("name", "?")
    name = spec.get("name") or f"{model} sweep"
    first = {lay["layer"]: next(p[0] for p in pages if p[2] is lay) for lay in manifest["layers"]}
    rows = []
    for lay in manifest["layers"]:
        done = [e for e in by_layer[lay["layer"]] if e["status"] == "done"][:PREVIEW]
        rows.append({
            "layer": lay["layer"], "href": _href(INDEX_FILE, first[lay["layer"]]), "done": lay["done"],
            "units": lay["units"], "channels": lay["channels"],
            "sheets": [{"number": i + 1, "href": _href(INDEX_FILE, s)} for i, s in enumerate(lay["sheets"]) if s],
            "thumbs": [{"href": _href(INDEX_FILE, unit_page_rel(lay["dir"], e["unit"])),
                        "thumb": _thumb(INDEX_FILE, e, 56)} for e in done],
        })
    obj = spec.get("objective") or []
    nav: Nav = {"next": (pages[0][0], "first layer")} if pages else {}
    return _page(
        "gallery_index.html", INDEX_FILE, f"featviz \u00b7 {name}", name, nav, rows=rows,
        done=manifest["done"], total=manifest["total"], corrupt=manifest.get("corrupt"), model=model,
        kind=obj[0].get("type", "") if obj and isinstance(obj[0], dict) else "", steps=spec.get("steps"),
        size=(spec.get("param") or {}).get("size"), seed=spec.get("seed"), spec_hash=record["spec_hash"][:12],
        caricatures=caricatures,
    )


def _layer_page(page: str, rows: list[dict[str, Any]], lay: dict[str, Any], p: int, n: int, nav: Nav) -> bytes:
    cells = [{
        "label": e["label"], "status": e["status"], "href": _href(page, unit_page_rel(lay["dir"], e["unit"])),
        "thumb": _thumb(page, e, THUMB) if e["status"] == "done" else None,
        "value": f" {number(e.get('objective'))}" if e["status"] == "done" else "",
    } for e in rows]
    sheet = lay["sheets"][p] if p < len(lay["sheets"]) else None
    return _page(
        "gallery_layer.html", page, f"featviz \u00b7 {lay['layer']} \u00b7 page {p + 1}/{n}", f"{lay['layer']}", nav,
        cells=cells, page_number=p + 1, pages=n, done=sum(e["status"] == "done" for e in rows),
        layer_done=lay["done"], layer_units=lay["units"], sheet=_href(page, sheet) if sheet else None,
    )


def _unit_page(page: str, e: dict[str, Any], nav: Nav, examples: dict[str, Any]) -> bytes:
    title = f"{e['layer']} unit {e['label']}"
    image, snapshots = None, []
    if e["status"] == "done":
        w = int(e.get("width") or 128)
        scale = max(1, 320 // w)
        image = {"src": _href(page, e["image"]), "size": w * scale, "px": scale > 1,
                 "objective": number(e.get("objective"))}
        for rel in e.get("snapshots") or []:
            step = rel.rsplit("_step", 1)[-1].split(".")[0].lstrip("0") or "0"
            snapshots.append({"src": _href(page, rel), "step": step})
    shown = [{**x, "crop": _href(page, x["crop"]), "full": _href(page, x["full"]) if x.get("full") else None,
              "source": x.get("source") or "", "name": Path(str(x.get("source") or "")).name,
              "activation": number(x.get("activation"))} for x in e.get("examples") or []]
    label = e["label"] if e["label"] != str(e["unit"]) else None
    facts = [("layer", e["layer"]), ("unit", e["unit"]), ("label", label), ("status", e["status"]),
             ("objective", number(e.get("objective"))), ("steps", e.get("steps")), ("device", e.get("device")),
             ("time per unit", f"{number(e.get('time_s'))} s"), ("batch", e.get("batch")), ("shard", e.get("shard")),
             ("worker", e.get("worker")), ("finished", e.get("finished")), ("sha256", e.get("sha256"))]
    return _page(
        "gallery_unit.html", page, f"featviz \u00b7 {title}", title, nav, status=e["status"], image=image,
        snapshots=snapshots, examples=shown, images_seen=examples.get("images_seen"),
        facts=[(k, number(v)) for k, v in facts if v is not None],
        meta=_href(page, e["meta"]) if e["status"] != "pending" else None,
        png=_href(page, e["image"]) if e.get("image") else None,
    )
