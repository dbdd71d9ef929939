"""The report's inline style sheet and script (no network, no external files).

The script only sorts and filters the failed-handshake table, opens the connection
named in the URL fragment and copies a connection's Wireshark display filter to the
clipboard (its "copy" button); it reads text with ``textContent`` and never writes HTML, so
capture strings cannot become markup. It marks ``<body data-ready="1">`` when done and
records any script error in ``data-js-error`` (the headless-browser test reads both).
"""

from __future__ import annotations

import base64
import hashlib

CSS = """
:root { --fg: #1d2430; --muted: #5b6677; --line: #d9dee5; --bg: #ffffff; --soft: #f4f6f9;
  --bad: #b3261e; --good: #2e7d32; font-family: system-ui, -apple-system, "Segoe UI",
  Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
body { margin: 0 auto; max-width: 1600px; padding: 1.5rem 2rem 4rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 2.2rem 0 .6rem; padding-bottom: .25rem;
  border-bottom: 2px solid var(--line); }
h3 { font-size: 1rem; margin: 1rem 0 .4rem; }
.muted { color: var(--muted); }
nav a { margin-right: 1rem; }
a { color: #1a56a8; }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: .85em; }
pre { background: var(--soft); padding: .5rem .75rem; border-radius: 4px; white-space: pre-wrap;
  word-break: break-word; margin: .25rem 0; }
.cards { display: flex; flex-wrap: wrap; gap: .75rem; margin: 1rem 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .6rem 1rem; min-width: 8rem;
  background: var(--soft); }
.card .n { font-size: 1.6rem; font-weight: 600; }
.card.bad .n { color: var(--bad); }
.card.good .n { color: var(--good); }
table { border-collapse: collapse; width: 100%; font-size: .88rem; margin: .4rem 0 1rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap { word-break: break-word; min-width: 20rem; }
td.name { word-break: break-all; min-width: 8rem; }
.nowrap { white-space: nowrap; }
#failed-table { font-size: .82rem; }
#failed-table td, #failed-table th { padding: .3rem .35rem; }
#failed-table .fix { color: var(--muted); margin-top: .2rem; display: -webkit-box;
  -webkit-box-orient: vertical; -webkit-line-clamp: 2; line-clamp: 2; overflow: hidden; }
#failed-table .fix:hover { -webkit-line-clamp: unset; line-clamp: none; }
#failed-table tr[hidden] { display: none; }
button.copy { font: inherit; font-size: 85%; margin-left: .5em; cursor: pointer; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0;
  cursor: pointer; color: inherit; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px;
  margin-right: .4em; vertical-align: -.05em; border: 1px solid rgba(0,0,0,.15); }
.tag { display: inline-block; padding: 0 .4em; border-radius: 3px; background: var(--soft);
  border: 1px solid var(--line); font-size: .8rem; white-space: nowrap; }
.filters { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center;
  margin: .5rem 0; }
.filters input, .filters select { font: inherit; padding: .25rem .4rem; }
.filters input { min-width: 18rem; }
.scroll { overflow-x: auto; }
figure { margin: 1rem 0 1.5rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: .9rem; margin-top: .25rem; }
details.conn { border: 1px solid var(--line); border-radius: 6px; margin: .5rem 0;
  padding: .25rem .75rem; }
details.conn[open] { background: #fbfcfd; }
details.conn > summary { cursor: pointer; padding: .3rem 0; }
details.conn:target { outline: 3px solid #f3b400; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem;
  margin: .25rem 0 .75rem; font-size: .9rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; word-break: break-word; }
.cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(24rem, 1fr)); gap: 1rem; }
.warn { color: #8a5300; }
.small { font-size: .85rem; }
"""

JS = """
(function () {
  "use strict";
  var body = document.body;
  window.addEventListener("error", function (e) {
    body.setAttribute("data-js-error", String(e.message || e));
  });
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id ? document.getElementById(id) : null;
    if (el && el.tagName === "DETAILS") { el.open = true; }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
  function copied(button) {
    button.textContent = "copied";
    button.setAttribute("data-copied", "1");
  }
  function copyFilter(button) {
    var code = button.previousElementSibling;
    var value = code ? code.textContent : "";
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(value).then(function () { copied(button); },
        function () { copyBySelection(code, button); });
    } else {
      copyBySelection(code, button);
    }
  }
  function copyBySelection(code, button) {
    var range = document.createRange();
    range.selectNodeContents(code);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (document.execCommand("copy")) { copied(button); }
  }
  Array.prototype.forEach.call(document.querySelectorAll("button.copy"), function (b) {
    b.addEventListener("click", function () { copyFilter(b); });
  });
  var table = document.getElementById("failed-table");
  if (!table) { body.setAttribute("data-ready", "1"); return; }
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var text = document.getElementById("filter-text");
  var category = document.getElementById("filter-category");
  var side = document.getElementById("filter-side");
  var shown = document.getElementById("shown-count");
  function apply() {
    var q = text.value.trim().toLowerCase();
    var c = category.value;
    var s = side.value;
    var n = 0;
    rows.forEach(function (r) {
      var ok = (!q || r.textContent.toLowerCase().indexOf(q) >= 0) &&
        (!c || r.getAttribute("data-failure") === c) &&
        (!s || r.getAttribute("data-side") === s);
      r.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = String(n);
  }
  function key(row, i) {
    var cell = row.cells[i];
    var v = cell.getAttribute("data-sort");
    return v === null ? cell.textContent.trim() : v;
  }
  function sortBy(i) {
    var th = heads[i];
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    var numeric = th.getAttribute("data-type") === "number";
    rows.sort(function (a, b) {
      var x = key(a, i);
      var y = key(b, i);
      if (numeric) { return dir * ((parseFloat(x) || 0) - (parseFloat(y) || 0)); }
      return dir * x.localeCompare(y);
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
  }
  heads.forEach(function (th, i) {
    var button = th.querySelector("button");
    if (button) { button.addEventListener("click", function () { sortBy(i); }); }
  });
  text.addEventListener("input", apply);
  category.addEventListener("change", apply);
  side.addEventListener("change", apply);
  apply();
  body.setAttribute("data-ready", "1");
})();
"""


def script_hash(script: str = JS) -> str:
    """CSP source expression allowing exactly this inline script (and nothing injected)."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def content_security_policy() -> str:
    """No network at all: images only as data URIs, our one script by hash, inline CSS."""
    return (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src {script_hash()}; base-uri 'none'; form-action 'none'"
    )
