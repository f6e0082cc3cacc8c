"""Plotly figures drawn from shaped data (every function only draws)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from hadanas.dashboards._data import (
    CellGraph,
    CompareData,
    FamilyData,
    HypervolumeData,
    ParallelData,
    ParetoData,
    format_value,
)

__all__ = [
    "FAMILY_COLORS",
    "cell_graph_figure",
    "compare_figure",
    "family_figure",
    "hypervolume_figure",
    "ops_figure",
    "parallel_figure",
    "pareto_figure",
]

_FRONT = "#d62728"
_OTHER = "rgba(31, 119, 180, 0.30)"
_INFEASIBLE = "rgba(127, 127, 127, 0.55)"
_FAILED = "#444444"
#: Above this many points a 2-D scatter is drawn with WebGL.
GL_THRESHOLD = 3000
FAMILY_COLORS: dict[str, str] = {
    "conventional": "#7f7f7f",
    "higher_order": "#9467bd",
    "gating": "#2ca02c",
    "masking": "#ff7f0e",
    "fusion": "#d62728",
    "pairwise": "#1f77b4",
    "unknown": "#bcbd22",
}
_STUDY_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
_LAYOUT = {"hoverlabel": {"align": "left"}, "margin": {"l": 70, "r": 30, "t": 60, "b": 60},
           "uirevision": "keep"}
#: The template every figure function applies unless told ``template=None`` (the dashboard
#: page applies one shared copy itself: building it per figure costs ~0.1 s each).
TEMPLATE = "plotly_white"


def _finish(fig: go.Figure, template: str | None) -> go.Figure:
    # template=None: an empty template, which also stops Plotly from copying its default
    # one in (the dashboard page applies one shared template to every figure).
    fig.update_layout(template=template if template is not None else go.layout.Template())
    return fig


def _label(name: str, direction: str) -> str:
    return f"{name} ({'higher' if direction == 'maximize' else 'lower'} is better)"


def _log_axis(name: str) -> bool:
    return name in ("flops", "params")


def pareto_figure(d: ParetoData, title: str = "Pareto front", template: str | None = TEMPLATE) -> go.Figure:
    """2 objectives: scatter + front as a step line; 3: 3-D scatter; 4+: scatter matrix.

    Front trials are solid red, dominated ones faded blue, infeasible ones grey crosses,
    failed ones dark crosses (2-D: along the bottom edge when only their cost is known).
    ``customdata`` of every marker is the trial number.
    """
    m = len(d.objectives)
    infeasible = np.array([s == "infeasible" for s in d.status], dtype=bool)
    groups = [
        ("front", d.on_front, {"color": _FRONT, "size": 10, "line": {"width": 1, "color": "white"}}),
        ("dominated", ~d.on_front & ~infeasible, {"color": _OTHER, "size": 7}),
        ("infeasible", infeasible, {"color": _INFEASIBLE, "size": 8, "symbol": "x"}),
    ]
    numbers = np.asarray(d.numbers, dtype=int)
    fig = go.Figure()
    if m == 1:
        order = np.argsort(numbers)
        fig.add_trace(go.Scatter(x=numbers[order], y=d.values[order, 0], mode="markers",
                                 text=[d.hover[i] for i in order], hoverinfo="text", name="trials",
                                 customdata=numbers[order]))
        fig.update_layout(xaxis_title="trial", yaxis_title=_label(d.objectives[0], d.directions[0]))
    elif m == 2:
        scatter = go.Scattergl if len(d.numbers) > GL_THRESHOLD else go.Scatter
        for name, mask, marker in groups:
            if not mask.any():
                continue
            idx = np.flatnonzero(mask)
            fig.add_trace(scatter(
                x=d.values[idx, 1], y=d.values[idx, 0], mode="markers", name=f"{name} ({len(idx)})",
                marker=marker, text=[d.hover[i] for i in idx], hoverinfo="text",
                customdata=numbers[idx],
            ))
        if d.on_front.any():
            idx = np.flatnonzero(d.on_front)
            idx = idx[np.argsort(d.values[idx, 1], kind="stable")]
            fig.add_trace(go.Scatter(x=d.values[idx, 1], y=d.values[idx, 0], mode="lines",
                                     line={"shape": "hv" if d.directions[1] == "minimize" else "vh",
                                           "color": _FRONT, "width": 1.5},
                                     hoverinfo="skip", name="front line", showlegend=False))
        fv = d.failed_values
        if len(fv):
            both = np.isfinite(fv[:, 0]) & np.isfinite(fv[:, 1])
            x_only = ~np.isfinite(fv[:, 0]) & np.isfinite(fv[:, 1])
            fn = np.asarray(d.failed_numbers, dtype=int)
            fail_marker = {"color": _FAILED, "size": 9, "symbol": "x-thin", "line": {"width": 2,
                                                                                      "color": _FAILED}}
            if both.any():
                idx = np.flatnonzero(both)
                fig.add_trace(go.Scatter(x=fv[idx, 1], y=fv[idx, 0], mode="markers",
                                         name=f"failed ({len(idx)})", marker=fail_marker,
                                         text=[d.failed_hover[i] for i in idx], hoverinfo="text",
                                         customdata=fn[idx]))
            if x_only.any():
                idx = np.flatnonzero(x_only)
                fig.add_trace(go.Scatter(
                    x=fv[idx, 1], y=np.full(len(idx), 0.03), yaxis="y2", mode="markers",
                    name=f"failed, no {d.objectives[0]} ({len(idx)})", marker=fail_marker,
                    text=[d.failed_hover[i] for i in idx], hoverinfo="text", customdata=fn[idx]))
                fig.update_layout(yaxis2={"overlaying": "y", "range": [0, 1], "visible": False,
                                          "fixedrange": True})
        fig.update_layout(xaxis_title=_label(d.objectives[1], d.directions[1]),
                          yaxis_title=_label(d.objectives[0], d.directions[0]))
        if _log_axis(d.objectives[1]):
            fig.update_xaxes(type="log")
    elif m == 3:
        for name, mask, marker in groups:
            if not mask.any():
                continue
            idx = np.flatnonzero(mask)
            fig.add_trace(go.Scatter3d(
                x=d.values[idx, 1], y=d.values[idx, 2], z=d.values[idx, 0], mode="markers",
                name=f"{name} ({len(idx)})",
                marker={"color": marker["color"], "size": marker["size"] / 2,
                        "symbol": "x" if name == "infeasible" else "circle"},
                text=[d.hover[i] for i in idx], hoverinfo="text", customdata=numbers[idx],
            ))
        fig.update_layout(scene={"xaxis_title": d.objectives[1], "yaxis_title": d.objectives[2],
                                 "zaxis_title": d.objectives[0]})
    else:
        colors = [_FRONT if f else (_INFEASIBLE if inf else _OTHER)
                  for f, inf in zip(d.on_front, infeasible)]
        fig.add_trace(go.Splom(
            dimensions=[{"label": o, "values": d.values[:, k]} for k, o in enumerate(d.objectives)],
            marker={"color": colors, "size": 6}, text=d.hover, hoverinfo="text", name="trials",
            customdata=numbers, diagonal={"visible": False},
        ))
    n_front = int(d.on_front.sum())
    extra = []
    if d.n_failed:
        extra.append(f"{d.n_failed} failed")
    if d.n_running:
        extra.append(f"{d.n_running} running")
    fig.update_layout(
        title=f"{title}: {len(d.numbers)} completed trials, {n_front} on the front"
        + (f" ({', '.join(extra)})" if extra else ""),
        height=560, legend={"orientation": "h", "y": -0.18}, **_LAYOUT,
    )
    return _finish(fig, template)


def _ref_text(objectives: Sequence[str], reference: Sequence[float]) -> str:
    return ", ".join(f"{o} {format_value(o, v)}" for o, v in zip(objectives, reference))


def hypervolume_figure(d: HypervolumeData, template: str | None = TEMPLATE) -> go.Figure:
    """Hypervolume of the feasible front after each completed trial (a step line)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=d.numbers, y=d.hypervolume, mode="lines+markers" if len(d.numbers) <= 200 else "lines",
        line={"shape": "hv", "color": _FRONT}, marker={"size": 5}, name="hypervolume",
        customdata=d.front_size, hovertemplate="trial %{x}<br>hypervolume %{y:.4g}"
        "<br>front size %{customdata}<extra></extra>",
    ))
    ref = _ref_text(d.objectives, d.reference)
    fig.update_layout(
        title=f"Hypervolume over trials (reference point: {ref})",
        xaxis_title="trial number", yaxis_title="hypervolume (objectives' units)", height=380,
        **_LAYOUT,
    )
    return _finish(fig, template)


def family_figure(d: FamilyData, template: str | None = TEMPLATE) -> go.Figure:
    """Each family's share of op slots among all trials and among front trials."""
    fig = go.Figure()
    colors = [FAMILY_COLORS.get(f, FAMILY_COLORS["unknown"]) for f in d.families]
    fig.add_trace(go.Bar(
        x=d.families, y=d.share_all * 100, name=f"all trials ({d.n_all})",
        marker={"color": "white", "line": {"color": colors, "width": 1.5},
                "pattern": {"shape": "/", "fgcolor": colors, "solidity": 0.4}},
        customdata=d.trials_all * 100,
        hovertemplate="%{x}: %{y:.1f}% of op slots<br>in %{customdata:.0f}% of all trials<extra></extra>",
    ))
    fig.add_trace(go.Bar(
        x=d.families, y=d.share_front * 100, name=f"front trials ({d.n_front})",
        marker={"color": colors}, customdata=d.trials_front * 100,
        hovertemplate="%{x}: %{y:.1f}% of op slots<br>in %{customdata:.0f}% of front trials<extra></extra>",
    ))
    fig.update_layout(title="Operator families: share of op slots",
                      barmode="group", yaxis_title="% of op slots", height=380,
                      legend={"orientation": "h", "y": -0.2}, **_LAYOUT)
    return _finish(fig, template)


def ops_figure(d: FamilyData, template: str | None = TEMPLATE) -> go.Figure:
    """Which ops the front uses: % of front trials (coloured by family) vs all trials."""
    colors = [FAMILY_COLORS.get(f, FAMILY_COLORS["unknown"]) for f in d.op_family]
    fig = go.Figure()
    fig.add_trace(go.Bar(
        y=d.ops, x=d.op_trials_front * 100, orientation="h", name="front trials using the op",
        marker={"color": colors}, customdata=d.op_family,
        hovertemplate="%{y} (%{customdata}): in %{x:.0f}% of front trials<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        y=d.ops, x=d.op_trials_all * 100, mode="markers", name="all trials using the op",
        marker={"symbol": "line-ns-open", "size": 14, "color": "#222", "line": {"width": 2}},
        hovertemplate="%{y}: in %{x:.0f}% of all trials<extra></extra>",
    ))
    on_front = int((d.op_trials_front > 0).sum())
    fig.update_layout(
        title=f"Ops on the front: {on_front} of the {len(d.ops)} ops used",
        xaxis_title="% of trials using the op", height=max(320, 22 * len(d.ops) + 140),
        yaxis={"autorange": "reversed", "automargin": True}, legend={"orientation": "h", "y": -0.12},
        **_LAYOUT,
    )
    return _finish(fig, template)


def parallel_figure(d: ParallelData, template: str | None = TEMPLATE) -> go.Figure:
    """Parallel coordinates; front trials red, the rest faded blue."""
    dims = []
    for dim in d.dims:
        entry: dict[str, object] = {"label": dim.label, "values": dim.values}
        if dim.ticktext is not None:
            entry["tickvals"] = list(range(len(dim.ticktext)))
            entry["ticktext"] = dim.ticktext
        dims.append(entry)
    fig = go.Figure(go.Parcoords(
        line={"color": d.on_front.astype(float), "colorscale": [[0, "#8fb4d9"], [1, _FRONT]],
              "cmin": 0, "cmax": 1},
        dimensions=dims, labelangle=-15,
    ))
    fig.update_layout(title=f"Objectives and choices ({len(d.numbers)} completed trials; red: front)",
                      height=440, **{**_LAYOUT, "margin": {"l": 80, "r": 80, "t": 110, "b": 40}})
    return _finish(fig, template)


def cell_graph_figure(g: CellGraph, title: str = "cell", template: str | None = TEMPLATE) -> go.Figure:
    """The cell DAG: nodes on a line, op edges as arcs coloured by family."""
    fig = go.Figure()
    seen: set[str] = set()
    for e in g.edges:
        if not e.op:  # loose end -> output
            fig.add_trace(go.Scatter(x=e.xs, y=e.ys, mode="lines", hoverinfo="skip",
                                     line={"color": "#999", "dash": "dot", "width": 1.5},
                                     showlegend=False))
            continue
        color = FAMILY_COLORS.get(e.family, FAMILY_COLORS["unknown"])
        fig.add_trace(go.Scatter(
            x=e.xs, y=e.ys, mode="lines", line={"color": color, "width": 3}, name=e.family,
            legendgroup=e.family, showlegend=e.family not in seen, hoverinfo="skip",
        ))
        seen.add(e.family)
    for f in g.node_family:  # combine families that no edge brought into the legend
        if f and f not in seen:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f, legendgroup=f,
                                     line={"color": FAMILY_COLORS.get(f, FAMILY_COLORS["unknown"]),
                                           "width": 3}))
            seen.add(f)
    ops = [e for e in g.edges if e.op]
    fig.add_trace(go.Scatter(
        x=[e.label_x for e in ops], y=[e.label_y for e in ops], mode="text",
        text=[e.label for e in ops], textfont={"size": 12,
                                               "color": [FAMILY_COLORS.get(e.family, "#333") for e in ops]},
        hovertext=[f"{e.label}<br>{e.family}<br>{'input' if e.src == 0 else f'n{e.src}'} → n{e.dst}"
                   for e in ops], hoverinfo="text", showlegend=False, name="ops",
    ))
    borders = [FAMILY_COLORS.get(f, FAMILY_COLORS["unknown"]) if f else "#555" for f in g.node_family]
    fig.add_trace(go.Scatter(
        x=g.node_x, y=g.node_y, mode="markers+text", text=g.node_label, textposition="middle center",
        marker={"size": 56, "color": "#ffffff", "line": {"color": borders, "width": 3}, "opacity": 1},
        textfont={"size": 11, "color": "#111"}, hovertext=g.node_hover, hoverinfo="text",
        showlegend=False, name="nodes",
    ))
    ys = [y for e in g.edges for y in e.ys] + [0.0]
    pad = 0.25
    fig.update_layout(
        title=f"{title}: {g.head}", height=420,
        xaxis={"visible": False, "range": [min(g.node_x) - 0.5, max(g.node_x) + 0.5]},
        yaxis={"visible": False, "range": [min(ys) - pad, max(ys) + pad]},
        legend={"orientation": "h", "y": -0.05, "title": {"text": "op family"}},
        **{**_LAYOUT, "margin": {"l": 20, "r": 20, "t": 50, "b": 30}},
    )
    return _finish(fig, template)


def compare_figure(d: CompareData, template: str | None = TEMPLATE) -> go.Figure:
    """Fronts of several studies overlaid (2 objectives: step lines; 3+: 3-D/first three)."""
    fig = go.Figure()
    m = len(d.objectives)
    for k, (name, front, nums, hv, n) in enumerate(zip(d.studies, d.fronts, d.front_numbers,
                                                      d.hypervolume, d.n_complete)):
        color = _STUDY_COLORS[k % len(_STUDY_COLORS)]
        label = f"{name}: {len(nums)} on front of {n}, HV {hv:.4g}"
        hover = ["<b>" + name + f"</b> trial {t}<br>" + "<br>".join(
            f"{o}: {format_value(o, v)}" for o, v in zip(d.objectives, row)) for t, row in zip(nums, front)]
        if m == 2:
            fig.add_trace(go.Scatter(
                x=front[:, 1], y=front[:, 0], mode="lines+markers", name=label,
                line={"shape": "hv" if d.directions[1] == "minimize" else "vh", "color": color},
                marker={"size": 8, "color": color}, text=hover, hoverinfo="text", customdata=nums,
            ))
        elif m >= 3:
            fig.add_trace(go.Scatter3d(
                x=front[:, 1], y=front[:, 2], z=front[:, 0], mode="markers", name=label,
                marker={"size": 4, "color": color}, text=hover, hoverinfo="text"))
        else:
            fig.add_trace(go.Scatter(x=[k] * len(front), y=front[:, 0], mode="markers", name=label,
                                     marker={"color": color}, text=hover, hoverinfo="text"))
    ref = _ref_text(d.objectives, d.reference)
    fig.update_layout(title=f"Ablation: Pareto fronts overlaid (hypervolume reference: {ref})",
                      height=520, legend={"orientation": "h", "y": -0.18}, **_LAYOUT)
    if m == 2:
        fig.update_layout(xaxis_title=_label(d.objectives[1], d.directions[1]),
                          yaxis_title=_label(d.objectives[0], d.directions[0]))
        if _log_axis(d.objectives[1]):
            fig.update_xaxes(type="log")
    elif m >= 3:
        fig.update_layout(scene={"xaxis_title": d.objectives[1], "yaxis_title": d.objectives[2],
                                 "zaxis_title": d.objectives[0]})
    return _finish(fig, template)
