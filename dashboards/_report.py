"""A self-contained HTML report of a study (opens offline: plotly.js is inlined)."""

from __future__ import annotations

import html
from pathlib import Path

import optuna
import plotly.io as pio

from hadanas.dashboards._data import pareto_data
from hadanas.dashboards._figures import pareto_figure
from hadanas.search._objectives import format_value

__all__ = ["write_report", "report_html"]


def report_html(study: optuna.Study) -> str:
    d = pareto_data(study)
    fig = pareto_figure(d, title=f"Study '{study.study_name}'")
    plot = pio.to_html(fig, include_plotlyjs=True, full_html=False, div_id="pareto")
    rows = []
    order = sorted((i for i in range(len(d.numbers)) if d.on_front[i]),
                   key=lambda i: -d.values[i, 0] if d.directions[0] == "maximize" else d.values[i, 0])
    for i in order:
        t = study.trials[d.numbers[i]]
        cells = [str(t.number)] + [format_value(o, v) for o, v in zip(d.objectives, d.values[i])]
        cells.append(html.escape(str(t.user_attrs.get("summary", ""))))
        cells.append(f"<code>hadanas export --study {html.escape(study.study_name)} --trial {t.number} --out export-{t.number}</code>")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ["trial", *d.objectives, "architecture", "export"])
    meta = {k: study.user_attrs.get(k) for k in ("space", "dataset", "hadanas_version", "created_at")}
    meta_html = " · ".join(f"{k}: <b>{html.escape(str(v))}</b>" for k, v in meta.items() if v)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hadanas — {html.escape(study.study_name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}} code{{font-size:12px}}</style>
</head><body>
<h1>hadanas study <code>{html.escape(study.study_name)}</code></h1>
<p>{meta_html}</p>
{plot}
<h2>Pareto front ({len(rows)} architectures)</h2>
<table id="front"><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>
</body></html>
"""


def write_report(study: optuna.Study, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(report_html(study), encoding="utf-8")
    return p
