"""Plotly figures drawn from shaped data."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from hadanas.dashboards._data import ParetoData

__all__ = ["pareto_figure"]

_FRONT = "#d62728"
_OTHER = "rgba(31, 119, 180, 0.35)"
_INFEASIBLE = "rgba(127, 127, 127, 0.5)"


def _label(name: str, direction: str) -> str:
    return f"{name} ({'higher' if direction == 'maximize' else 'lower'} is better)"


def pareto_figure(d: ParetoData, title: str = "Pareto front") -> go.Figure:
    """2 objectives: scatter + front as a step line; 3: 3-D scatter; 4+: scatter matrix."""
    m = len(d.objectives)
    infeasible = np.array([s == "infeasible" for s in d.status], dtype=bool)
    groups = [
        ("front", d.on_front, _FRONT, 10),
        ("dominated", ~d.on_front & ~infeasible, _OTHER, 7),
        ("infeasible", infeasible, _INFEASIBLE, 7),
    ]
    fig = go.Figure()
    if m == 1:
        order = np.argsort(d.numbers)
        fig.add_trace(go.Scatter(x=np.array(d.numbers)[order], y=d.values[order, 0], mode="markers",
                                 text=[d.hover[i] for i in order], hoverinfo="text", name="trials"))
        fig.update_layout(xaxis_title="trial", yaxis_title=_label(d.objectives[0], d.directions[0]))
    elif m == 2:
        for name, mask, color, size in groups:
            if not mask.any():
                continue
            idx = np.flatnonzero(mask)
            fig.add_trace(go.Scatter(
                x=d.values[idx, 1], y=d.values[idx, 0], mode="markers", name=name,
                marker={"color": color, "size": size, "symbol": "x" if name == "infeasible" else "circle"},
                text=[d.hover[i] for i in idx], hoverinfo="text",
                customdata=[d.numbers[i] for i in idx],
            ))
        if d.on_front.any():
            idx = np.flatnonzero(d.on_front)
            idx = idx[np.argsort(d.values[idx, 1])]
            fig.add_trace(go.Scatter(x=d.values[idx, 1], y=d.values[idx, 0], mode="lines",
                                     line={"shape": "hv", "color": _FRONT, "width": 1.5},
                                     hoverinfo="skip", name="front line", showlegend=False))
        fig.update_layout(xaxis_title=_label(d.objectives[1], d.directions[1]),
                          yaxis_title=_label(d.objectives[0], d.directions[0]))
        if d.objectives[1] in ("flops", "params"):
            fig.update_xaxes(type="log")
    elif m == 3:
        for name, mask, color, size in groups:
            if not mask.any():
                continue
            idx = np.flatnonzero(mask)
            fig.add_trace(go.Scatter3d(
                x=d.values[idx, 1], y=d.values[idx, 2], z=d.values[idx, 0], mode="markers", name=name,
                marker={"color": color, "size": size / 2}, text=[d.hover[i] for i in idx],
                hoverinfo="text",
            ))
        fig.update_layout(scene={"xaxis_title": d.objectives[1], "yaxis_title": d.objectives[2],
                                 "zaxis_title": d.objectives[0]})
    else:
        colors = [_FRONT if f else (_INFEASIBLE if inf else _OTHER)
                  for f, inf in zip(d.on_front, infeasible)]
        fig.add_trace(go.Splom(
            dimensions=[{"label": o, "values": d.values[:, k]} for k, o in enumerate(d.objectives)],
            marker={"color": colors, "size": 6}, text=d.hover, hoverinfo="text", name="trials",
        ))
    n_front = int(d.on_front.sum())
    fig.update_layout(
        title=f"{title}: {len(d.numbers)} completed trials, {n_front} on the front"
        + (f", {d.n_failed} failed" if d.n_failed else ""),
        template="plotly_white", hoverlabel={"align": "left"}, height=560,
    )
    return fig
