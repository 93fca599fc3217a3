"""The static HTML gallery of a sweep: a model index, pages of each layer's units, one page per unit.

Plain HTML and CSS with relative links, so it works opened straight from the filesystem with no
server. A little vanilla JavaScript adds keyboard navigation (left/right: previous/next, up: the
page above, ``[``/``]``: the previous/next layer, ``/``: the jump box) and the jump box itself
(``layer:unit``, a unit of the current layer, or a layer), whose table of layers is one shared file,
``gallery/jump.js``. A unit's page shows every technique's renders, its dataset examples (where
``featviz examples`` wrote ``OUT/examples/<layer>/examples.json``), its activation histogram over
the dataset and its faithfulness (where ``featviz faithfulness`` measured it).

The pages are built from the manifest (``sweep.rebuild``) with the templates ``gallery_*.html``
(their contexts in ``pages``); each page is written atomically and only when its content changed.
"""
from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import OutputError
from ..examples.layout import EXAMPLES_JSON, layer_rel, read_examples
from ..html import render
from ..outputs import ensure_dir, safe_join, write_bytes_if_changed

GALLERY_DIR = "gallery"
INDEX_FILE = "index.html"
JUMP_FILE = f"{GALLERY_DIR}/jump.js"
THUMB = 112  # thumbnail box on layer pages, CSS pixels
PREVIEW = 8  # thumbnails per layer on the index
ARROWS = {"up": "\u2191", "prev": "\u2190", "next": "\u2192", "prev-layer": "[", "next-layer": "]"}

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


def layer_page_rel(layer_dir: str, page: int, technique: str | None = None) -> str:
    """A layer's gallery page relative to OUT (the first technique's pages, or a later technique's)."""
    sub = f"/{technique}" if technique else ""
    return f"{GALLERY_DIR}/{layer_dir}{sub}/page_{page:03d}.html"


def unit_page_rel(layer_dir: str, unit: int) -> str:
    """A unit's gallery page relative to OUT (one page for all its techniques)."""
    return f"{GALLERY_DIR}/{layer_dir}/unit_{unit:05d}.html"


def href(page: str, target: str) -> str:
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


def root_of(page: str) -> str:
    """The relative URL of OUT from ``page``: ``''`` for the index, ``../../`` for a unit page."""
    return "../" * page.count("/")


def links(page: str, nav: Nav) -> list[dict[str, str | None]]:
    """The header's links: ``index`` (unless up is the index), then up/prev/next and the layer keys."""
    up = nav.get("up")
    out: list[dict[str, str | None]] = []
    if not (page == INDEX_FILE or (up and up[0] == INDEX_FILE)):
        out.append({"rel": None, "href": href(page, INDEX_FILE), "text": "index"})
    for rel in ("up", "prev", "next", "prev-layer", "next-layer"):
        target = nav.get(rel)
        if target:
            out.append({"rel": rel, "href": href(page, target[0]), "text": f"{ARROWS[rel]} {target[1]}"})
    return out


def page_bytes(template: str, page: str, title: str, heading: str, nav: Nav, **context: Any) -> bytes:
    """A whole gallery page from ``template``: links, title and heading, the jump box's root, the content."""
    return render(template, title=title, heading=heading, links=links(page, nav), root=root_of(page),
                  jump=href(page, JUMP_FILE), **context).encode("utf-8")


# ---------------------------------------------------------------- the gallery's structure


@dataclass
class Layer:
    """One layer of the gallery: its name, directory, width, and its manifest entries per technique."""

    name: str
    dir: str
    channels: int
    rows: dict[str | None, list[dict[str, Any]]] = field(default_factory=dict)  # technique dir -> entries
    summaries: dict[str | None, dict[str, Any]] = field(default_factory=dict)  # technique dir -> manifest row

    def units(self) -> list[dict[str, Any]]:
        """The layer's entries of its first technique (every technique renders the same units)."""
        return next(iter(self.rows.values()), [])


@dataclass
class Site:
    """What the pages are made of: the techniques (None alone without ``sweep.techniques``) and the layers."""

    techniques: list[str | None]
    titles: dict[str | None, str]
    layers: list[Layer]
    page_size: int

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> "Site":
        """The structure of the manifest's layers and units."""
        declared = manifest.get("techniques") or []
        techniques: list[str | None] = [t["dir"] for t in declared] or [None]
        titles: dict[str | None, str] = {t["dir"]: t.get("title") or t["dir"] for t in declared} or {None: ""}
        layers: dict[str, Layer] = {}
        by_dir: dict[str, list[dict[str, Any]]] = {lay["dir"]: [] for lay in manifest["layers"]}
        for lay in manifest["layers"]:
            tech = lay.get("technique")
            bare = lay["dir"][len(tech) + 1:] if tech else lay["dir"]
            layer = layers.setdefault(lay["layer"], Layer(lay["layer"], bare, int(lay["channels"])))
            layer.rows[tech] = by_dir[lay["dir"]]
            layer.summaries[tech] = lay
        dirs = {(lay["layer"], lay.get("technique")): lay["dir"] for lay in manifest["layers"]}
        for e in manifest["units"]:
            by_dir[dirs[(e["layer"], e.get("technique"))]].append(e)
        return cls(techniques, titles, list(layers.values()), int(manifest["page_size"]))

    def pages(self, layer: Layer) -> int:
        """How many pages a layer's units fill."""
        return max(1, -(-len(layer.units()) // self.page_size))

    def layer_page(self, layer: Layer, technique: str | None, page: int) -> str:
        """The page ``page`` of ``layer`` as ``technique`` renders it (the first technique's at the top)."""
        return layer_page_rel(layer.dir, page, None if technique == self.techniques[0] else technique)


# ---------------------------------------------------------------- writing


def write_gallery(out: Path, record: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """Write ``index.html``, the jump box's table, every layer and unit page; return their paths relative to OUT."""
    from . import pages

    out = Path(out)
    site = Site.of(manifest)
    write = _Writer(out)
    write(JUMP_FILE, jump_script(site))
    write(INDEX_FILE, pages.index_page(out, site, record, manifest))
    written = [JUMP_FILE, INDEX_FILE]
    for tech in site.techniques:
        sequence = [(layer, p) for layer in site.layers for p in range(site.pages(layer))]
        for k, (layer, p) in enumerate(sequence):
            rel = site.layer_page(layer, tech, p)
            nav: Nav = {"up": (INDEX_FILE, "index"),
                        "prev": (site.layer_page(*_at(sequence, k - 1, tech)), "previous page") if k > 0 else None,
                        "next": (site.layer_page(*_at(sequence, k + 1, tech)), "next page")
                        if k + 1 < len(sequence) else None}
            write(rel, pages.layer_page(rel, site, layer, tech, p, nav))
            written.append(rel)
    examples = {layer.name: load_examples(out, layer.name) for layer in site.layers}
    units = [(i, j) for i, layer in enumerate(site.layers) for j in range(len(layer.units()))]
    index_of = [{e["unit"]: j for j, e in enumerate(layer.units())} for layer in site.layers]
    for k, (i, j) in enumerate(units):
        layer = site.layers[i]
        e = layer.units()[j]
        rel = unit_page_rel(layer.dir, e["unit"])
        nav = {"up": (site.layer_page(layer, site.techniques[0], j // site.page_size), layer.name)}
        for key, (di, text) in (("prev", (-1, "previous")), ("next", (1, "next"))):
            if 0 <= k + di < len(units):
                a, b = units[k + di]
                nav[key] = (unit_page_rel(site.layers[a].dir, site.layers[a].units()[b]["unit"]), text)
        for key, di in (("prev-layer", -1), ("next-layer", 1)):
            if 0 <= i + di < len(site.layers) and e["unit"] in index_of[i + di]:
                other = site.layers[i + di]
                nav[key] = (unit_page_rel(other.dir, e["unit"]), f"{other.name}:{e['unit']}")
        write(rel, pages.unit_page(rel, site, layer, j, nav, examples[layer.name]))
        written.append(rel)
    return written


def _at(sequence: list[tuple[Layer, int]], k: int, tech: str | None) -> tuple[Layer, str | None, int]:
    layer, p = sequence[k]
    return layer, tech, p


def jump_script(site: Site) -> bytes:
    """``gallery/jump.js``: the table of layers (directory, units as ranges) and the jump box's code."""
    table = [{"name": layer.name, "dir": layer.dir, "units": _ranges([e["unit"] for e in layer.units()])}
             for layer in site.layers]
    data = json.dumps(table, separators=(",", ":")).replace("</", "<\\/")
    return render("gallery_jump.js", layers=data).encode("utf-8")


def _ranges(units: list[int]) -> list[list[int]]:
    """Sorted units as [first, last] runs: ``[0, 1, 2, 5]`` -> ``[[0, 2], [5, 5]]``."""
    runs: list[list[int]] = []
    for u in sorted(units):
        if runs and u == runs[-1][1] + 1:
            runs[-1][1] = u
        else:
            runs.append([u, u])
    return runs


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
