"""Shape a stored study into plain data for the figures (no Plotly here)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.trial import TrialState

from hadanas.search._objectives import format_value
from hadanas.search._pareto import pareto_mask, to_minimization

__all__ = ["ParetoData", "pareto_data", "study_objectives"]


class ParetoData(NamedTuple):
    objectives: list[str]
    directions: list[str]
    numbers: list[int]
    values: np.ndarray  # (n, m), objectives' natural units
    on_front: np.ndarray  # (n,) bool
    status: list[str]  # trained | stopped_early | duplicate | infeasible
    hover: list[str]
    n_failed: int


def study_objectives(study: optuna.Study) -> list[str]:
    names = study.user_attrs.get("objectives")
    if names and len(names) == len(study.directions):
        return list(names)
    return [f"objective {i}" for i in range(len(study.directions))]


def _direction(d: optuna.study.StudyDirection) -> str:
    return "maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize"


def pareto_data(study: optuna.Study) -> ParetoData:
    """Completed trials with their objective values, front membership and hover text."""
    objectives = study_objectives(study)
    directions = [_direction(d) for d in study.directions]
    trials = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values is not None and all(math.isfinite(v) for v in t.values)
    ]
    n_failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    values = np.array([t.values for t in trials], dtype=float).reshape(len(trials), len(directions))
    status = [str(t.user_attrs.get("status", "trained")) for t in trials]
    feasible = np.array([s != "infeasible" for s in status], dtype=bool)
    on_front = np.zeros(len(trials), dtype=bool)
    if feasible.any():
        idx = np.flatnonzero(feasible)
        on_front[idx[pareto_mask(to_minimization(values[idx], directions))]] = True
    hover = [_hover(t, objectives) for t in trials]
    return ParetoData(objectives, directions, [t.number for t in trials], values, on_front,
                      status, hover, n_failed)


def _hover(t: optuna.trial.FrozenTrial, objectives: list[str]) -> str:
    a: dict[str, Any] = t.user_attrs
    lines = [f"<b>trial {t.number}</b> ({a.get('status', 'trained')})"]
    for o, v in zip(objectives, t.values or []):
        lines.append(f"{o}: {format_value(o, v)}")
    for k, o in (("params", "params"), ("flops", "flops")):
        if k in a and o not in objectives:
            lines.append(f"{k}: {format_value(o, a[k])}")
    if a.get("epochs") is not None:
        lines.append(f"epochs: {a['epochs']}")
    summary = a.get("summary", "")
    if summary:
        head, _, cell = summary.partition(" | ")
        lines.append(head)
        lines.extend(cell.split(" "))
    return "<br>".join(lines)
