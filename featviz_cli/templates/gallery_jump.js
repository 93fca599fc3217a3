/* The gallery's jump box ("layer:unit", a unit of the page's layer, or a layer) and keyboard navigation
   (arrows, [ ], /); one file shared by every page, works from file:// (no server). */
(function () {
  var LAYERS = {{ layers|safe }};
  function pad(n) { var s = String(n); while (s.length < 5) s = "0" + s; return s; }
  function has(layer, unit) {
    return layer.units.some(function (r) { return unit >= r[0] && unit <= r[1]; });
  }
  function find(name) {
    var exact = LAYERS.filter(function (l) { return l.name === name; });
    if (exact.length) return exact[0];
    var low = name.toLowerCase();
    var loose = LAYERS.filter(function (l) { return l.name.toLowerCase() === low; });
    if (loose.length === 1) return loose[0];
    var ends = LAYERS.filter(function (l) { return l.name.toLowerCase().slice(-low.length) === low; });
    return ends.length === 1 ? ends[0] : null;
  }
  /* The URL (relative to the gallery's root) a query means, or an error message. */
  function target(query, here) {
    var q = query.trim(), cut = q.lastIndexOf(":"), name, unit;
    if (cut >= 0) { name = q.slice(0, cut).trim(); unit = q.slice(cut + 1).trim(); }
    else if (/^\d+$/.test(q)) { name = here; unit = q; }
    else { name = q; unit = ""; }
    if (!name) return {error: "give layer:unit"};
    var layer = find(name);
    if (!layer) return {error: "no layer " + name};
    if (unit === "") return {url: "gallery/" + layer.dir + "/page_000.html"};
    if (!/^\d+$/.test(unit)) return {error: unit + " is not a unit number"};
    var n = parseInt(unit, 10);
    if (!has(layer, n)) return {error: layer.name + " has no unit " + n + " in this sweep"};
    return {url: "gallery/" + layer.dir + "/unit_" + pad(n) + ".html"};
  }
  window.featvizJump = target;
  function setup() {
    var form = document.querySelector("form.jump");
    if (!form) return;
    var list = form.querySelector("datalist");
    LAYERS.forEach(function (l) { var o = document.createElement("option"); o.value = l.name + ":"; list.appendChild(o); });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var t = target(form.q.value, form.getAttribute("data-layer"));
      if (t.error) { form.querySelector("output").textContent = t.error; return; }
      location.href = form.getAttribute("data-root") + t.url;
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup); else setup();
})();
document.addEventListener("keydown", function (e) {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  var t = e.target;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
  if (e.key === "/") { var q = document.querySelector("form.jump input"); if (q) { e.preventDefault(); q.focus(); } return; }
  if (e.shiftKey) return;
  var rel = {ArrowLeft: "prev", ArrowRight: "next", ArrowUp: "up", u: "up", Escape: "up", "[": "prev-layer", "]": "next-layer"}[e.key];
  var a = rel && document.querySelector('a[rel~="' + rel + '"]');
  if (a) { e.preventDefault(); location.href = a.href; }
});
