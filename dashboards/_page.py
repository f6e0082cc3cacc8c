"""The dashboard page: one HTML document for the static report and the live server.

The page draws a payload (see ``_app``). The report embeds the payload and plotly.js in
the file; the server page loads ``plotly.min.js``, ``api/front.json`` and
``api/views.json`` from the server and polls ``api/version`` to refresh. No CDN, no
external request.
"""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["page_html", "script_json"]


def script_json(obj: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#fff;border-bottom:1px solid #ddd;padding:12px 24px}
header h1{font-size:20px;margin:0 0 4px 0} header .meta{font-size:13px;color:#555}
#status{float:right;font-size:13px;color:#2a7a2a} #status.busy{color:#b26b00}
nav a{margin-right:14px;font-size:13px}
main{padding:8px 24px 40px 24px;max-width:1400px}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;margin:16px 0;padding:8px 12px}
section h2{font-size:16px;margin:6px 0}
.row{display:flex;gap:16px;flex-wrap:wrap} .row>div{flex:1 1 520px;min-width:0}
table{border-collapse:collapse;font-size:13px;width:100%}
td,th{border-bottom:1px solid #eee;padding:3px 8px;text-align:left;vertical-align:top}
tbody tr{cursor:pointer} tbody tr:hover{background:#f3f7fd} tr.sel{background:#fde9e9}
pre{background:#f6f6f6;padding:8px;font-size:12px;max-height:360px;overflow:auto;margin:4px 0}
code.cmd{display:block;background:#222;color:#eee;padding:8px;font-size:12px;white-space:pre-wrap}
.note{font-size:12px;color:#666} .hidden{display:none}
"""

_JS = r"""
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("hadanas-config").textContent);
  var data = null, selected = null, polling = false, wired = {};
  var FRONT_FIGS = ["pareto", "hypervolume", "compare"], VIEW_FIGS = ["families", "ops", "parallel"];
  var PLOT_CFG = {responsive: true, displaylogo: false, displayModeBar: "hover",
                  modeBarButtonsToRemove: ["select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d"]};
  function $(id) { return document.getElementById(id); }
  function text(el, s) { el.textContent = s == null ? "" : String(s); }
  function status(msg, busy) { var s = $("status"); text(s, msg); s.className = busy ? "busy" : ""; }

  function header(d) {
    text($("title"), "hadanas study " + d.study);
    var c = d.counts, parts = [];
    Object.keys(d.meta).forEach(function (k) { parts.push(k + ": " + d.meta[k]); });
    parts.push(c.complete + " completed", c.front + " on the front");
    if (c.infeasible) parts.push(c.infeasible + " infeasible");
    if (c.failed) parts.push(c.failed + " failed");
    if (c.running) parts.push(c.running + " running");
    parts.push("objectives: " + d.objectives.map(function (o, i) {
      return o + " (" + (d.directions[i] === "maximize" ? "max" : "min") + ")"; }).join(", "));
    text($("meta"), parts.join(" \u00b7 "));
  }

  function frontTable(d) {
    var head = $("front-head"), body = $("front-body");
    head.innerHTML = ""; body.innerHTML = "";
    var tr = document.createElement("tr");
    ["trial"].concat(d.objectives, ["params", "architecture"]).forEach(function (h) {
      var th = document.createElement("th"); text(th, h); tr.appendChild(th); });
    head.appendChild(tr);
    d.front.forEach(function (r) {
      var row = document.createElement("tr");
      row.dataset.trial = r.number;
      [r.number].concat(r.values, [r.params, r.summary]).forEach(function (v) {
        var td = document.createElement("td"); text(td, v); row.appendChild(td); });
      row.addEventListener("click", function () { select(r.number); });
      body.appendChild(row);
    });
    text($("front-count"), d.front.length);
  }

  function draw(key, fig) {
    var div = $("fig-" + key), sec = $("sec-" + (key === "ops" ? "families" : key));
    if (!fig) { sec.classList.add("hidden"); return Promise.resolve(); }
    sec.classList.remove("hidden");
    fig.layout.template = data.template;
    return Plotly.react(div, fig.data, fig.layout, PLOT_CFG).then(function () {
      if (!wired[key] && div.on) {
        div.on("plotly_click", function (ev) {
          var p = ev && ev.points && ev.points[0];
          if (p && p.customdata != null && !isNaN(Number(p.customdata))) select(Number(p.customdata));
        });
        wired[key] = true;
      }
    });
  }

  function showDetail(det) {
    text($("detail-title"), det.title);
    var body = $("detail-metrics"); body.innerHTML = "";
    det.metrics.forEach(function (m) {
      var tr = document.createElement("tr"), a = document.createElement("th"), b = document.createElement("td");
      text(a, m[0]); text(b, m[1]); tr.appendChild(a); tr.appendChild(b); body.appendChild(tr); });
    text($("detail-spec"), det.spec_json || "(no spec recorded)");
    text($("detail-export"), det.export || "(not exportable: the trial did not finish training)");
    Array.prototype.forEach.call(document.querySelectorAll("#front-body tr"), function (tr) {
      tr.classList.toggle("sel", Number(tr.dataset.trial) === det.number); });
    if (det.graph) {
      det.graph.layout.template = data.template;
      return Plotly.react($("fig-cell"), det.graph.data, det.graph.layout, PLOT_CFG);
    }
    Plotly.purge($("fig-cell"));
    return Promise.resolve();
  }

  function select(n) {
    if (n == null) return Promise.resolve();
    selected = n;
    var det = data && data.details[String(n)];
    if (det) return showDetail(det);
    if (!cfg.live) { text($("detail-title"), "trial " + n + ": details are in the live dashboard (hadanas dashboard --serve)"); return Promise.resolve(); }
    return fetch("api/trial/" + n + ".json", {cache: "no-store"}).then(function (r) {
      if (!r.ok) throw new Error("trial " + n + ": HTTP " + r.status);
      return r.json();
    }).then(function (det) { if (selected === n) return showDetail(det); })
      .catch(function (e) { text($("detail-title"), String(e)); });
  }

  function renderFront(d) {
    data = d;
    if (!data.details) data.details = {};
    header(d);
    frontTable(d);
    var jobs = FRONT_FIGS.map(function (k) { return draw(k, d.figures[k]); });
    var keep = selected != null && (d.details[String(selected)] || cfg.live) ? selected : d.default_trial;
    jobs.push(select(keep));
    return Promise.all(jobs);
  }

  function renderViews(v) {
    Object.keys(v.details || {}).forEach(function (k) { data.details[k] = v.details[k]; });
    return Promise.all(VIEW_FIGS.map(function (k) { return draw(k, v.figures[k]); }));
  }

  function ready(version) {
    document.body.dataset.version = version;
    document.body.dataset.ready = "1";
    if (cfg.live) status("live \u00b7 updated " + new Date().toLocaleTimeString(), false);
  }

  function getJSON(url) {
    return fetch(url, {cache: "no-store"}).then(function (r) {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.json();
    });
  }

  function load() {
    document.body.dataset.ready = "";
    return getJSON("api/front.json").then(function (d) {
      return renderFront(d).then(function () { return getJSON("api/views.json"); })
        .then(renderViews).then(function () { ready(d.version); });
    });
  }

  function poll() {
    if (polling) return;
    polling = true;
    fetch("api/version", {cache: "no-store"}).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (v) {
      if (!data || v.version !== data.version) return load();
      status("live \u00b7 checked " + new Date().toLocaleTimeString(), false);
    }).catch(function (e) {
      status("store not readable just now (" + e.message + "); retrying", true);
    }).then(function () { polling = false; });
  }

  if (cfg.live) {
    status("loading\u2026", false);
    load().catch(function (e) { status("cannot load the study (" + e.message + "); retrying", true); });
    setInterval(poll, cfg.interval_ms);
  } else {
    var d = JSON.parse(document.getElementById("hadanas-data").textContent);
    renderFront(d).then(function () { return renderViews(d); }).then(function () { ready(d.version); });
  }
})();
"""

_BODY = """
<header><span id="status"></span><h1 id="title">hadanas study</h1><div class="meta" id="meta"></div>
<nav><a href="#sec-pareto">Pareto front</a><a href="#sec-hypervolume">hypervolume</a>
<a href="#sec-families">operator families</a><a href="#sec-parallel">parallel coordinates</a>
<a href="#sec-detail">trial detail</a><a href="#sec-compare">ablation</a></nav></header>
<main>
<section id="sec-pareto"><div id="fig-pareto"></div>
<p class="note">Click a point (or a row below) to show the trial. Red: the front (feasible, non-dominated);
faded: dominated; grey crosses: infeasible (never trained); dark crosses: failed.</p></section>
<section id="sec-front"><h2>Front (<span id="front-count">0</span> architectures)</h2>
<table><thead id="front-head"></thead><tbody id="front-body"></tbody></table></section>
<section id="sec-detail"><h2 id="detail-title">trial</h2>
<div class="row"><div><div id="fig-cell"></div></div>
<div><table><tbody id="detail-metrics"></tbody></table>
<h2>export</h2><code class="cmd" id="detail-export"></code>
<h2>spec</h2><pre id="detail-spec"></pre></div></div></section>
<section id="sec-hypervolume"><div id="fig-hypervolume"></div></section>
<section id="sec-families"><div class="row"><div id="fig-families"></div><div id="fig-ops"></div></div></section>
<section id="sec-parallel"><div id="fig-parallel"></div></section>
<section id="sec-compare" class="hidden"><div id="fig-compare"></div></section>
</main>
"""


def page_html(title: str, plotly_js: str | None, config: dict[str, Any],
              payload_json: str | None) -> str:
    """The page. ``plotly_js``: the library inlined (report) or None to load
    ``plotly.min.js`` from the server; ``payload_json``: the embedded data (report)."""
    lib = (f"<script>{plotly_js}</script>" if plotly_js is not None
           else '<script src="plotly.min.js"></script>')
    data = (f'<script type="application/json" id="hadanas-data">{script_json(payload_json)}</script>'
            if payload_json is not None else "")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{html.escape(title)}</title><link rel="icon" href="data:,">'
        f"<style>{_CSS}</style>{lib}</head><body>{_BODY}"
        f'<script type="application/json" id="hadanas-config">{script_json(config)}</script>'
        f"{data}<script>{_JS}</script></body></html>\n"
    )
