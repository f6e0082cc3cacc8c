"""Shape a stored study into plain data for the figures (no Plotly here).

Every function takes :class:`~hadanas.dashboards._records.StudyRecords` (or an
``optuna.Study``, read through Optuna's API) and returns a small NamedTuple of lists and
NumPy arrays in the objectives' natural units. Maximised objectives are turned into
minimised ones only through :func:`hadanas.search._pareto.to_minimization`.
"""

from __future__ import annotations

import bisect
import html
import json
import math
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import optuna

from hadanas.dashboards._records import StudyRecords, TrialRecord, records_from_study
from hadanas.exceptions import ConfigError
from hadanas.search._objectives import ATTR_OF
from hadanas.search._objectives import format_value as _format_known
from hadanas.search._pareto import first_of_each, hypervolume, pareto_mask, to_minimization

__all__ = [
    "CellEdge",
    "CellGraph",
    "CompareData",
    "FamilyData",
    "HypervolumeData",
    "ParallelData",
    "ParallelDim",
    "ParetoData",
    "TrialDetail",
    "cell_graph",
    "compare_data",
    "export_command",
    "format_value",
    "family_data",
    "hypervolume_data",
    "op_families",
    "parallel_data",
    "pareto_data",
    "reference_point",
    "SpecFeatures",
    "spec_features",
    "spec_ops",
    "spec_summary",
    "study_objectives",
    "trial_detail",
]

Source = StudyRecords | optuna.Study


def format_value(objective: str, v: float | None) -> str:
    """hadanas's units for its objectives and costs; 4 significant digits for any other name."""
    if objective in ATTR_OF or v is None:
        return _format_known(objective, v)
    return f"{v:.4g}"


def _records(src: Source) -> StudyRecords:
    return src if isinstance(src, StudyRecords) else records_from_study(src)


def study_objectives(study: optuna.Study) -> list[str]:
    names = study.user_attrs.get("objectives")
    if names and len(names) == len(study.directions):
        return list(names)
    return [f"objective {i}" for i in range(len(study.directions))]


def _finite(t: TrialRecord) -> bool:
    return t.values is not None and all(math.isfinite(v) for v in t.values)


def _completed(r: StudyRecords) -> list[TrialRecord]:
    return [t for t in r.trials if t.state == "COMPLETE" and _finite(t)]


def _feasible(t: TrialRecord) -> bool:
    return t.attrs.get("status") != "infeasible"


# --- specs -----------------------------------------------------------------------------
def spec_ops(spec: Mapping[str, Any]) -> list[str]:
    """Every op of a spec dict: edges, combines of multi-edge nodes, the input fusion.

    The same list as ``ArchSpec.from_dict(spec).ops()``, without validating the spec.
    """
    cell = spec.get("cell") or []
    names = [str(e.get("op")) for n in cell for e in n.get("edges", [])]
    names += [str(n.get("combine", "sum")) for n in cell if len(n.get("edges", [])) > 1]
    if spec.get("input_fusion"):
        names.append(str(spec["input_fusion"]))
    return names


def spec_summary(spec: Mapping[str, Any]) -> str:
    """The same line as ``ArchSpec.summary()``, from a spec dict."""
    parts = []
    for i, n in enumerate(spec.get("cell") or [], start=1):
        edges = ",".join(f"{e.get('op')}({e.get('src')})" for e in n.get("edges", []))
        parts.append(f"n{i}={n.get('combine', 'sum')}[{edges}]" if len(n.get("edges", [])) > 1
                     else f"n{i}={edges}")
    head = f"w{'/'.join(map(str, spec.get('stages', [])))} x{spec.get('cells_per_stage', 1)}"
    if spec.get("input_fusion"):
        head += f" fuse={spec['input_fusion']}"
        if spec.get("fusion_point", "stem") != "stem":
            head += f"@{spec['fusion_point']}"
    return head + " | " + " ".join(parts)


class SpecFeatures(NamedTuple):
    ops: list[str]  # spec_ops()
    families: list[str]  # the family of each of ``ops``
    edge_families: list[str]  # the family of each edge op
    width: float  # stages[0]
    cells_per_stage: float
    combines: list[str]  # per node: its combine, or "-" for a one-edge node


def spec_features(src: Source, families: Mapping[str, str] | None = None) -> dict[int, SpecFeatures]:
    """trial number -> what the figures need of its spec (trials without a spec left out)."""
    r = _records(src)
    fam = dict(families) if families is not None else op_families()
    out: dict[int, SpecFeatures] = {}
    nan = float("nan")
    for t in r.trials:
        spec = t.attrs.get("spec")
        if not isinstance(spec, dict):
            continue
        cell = spec.get("cell") or []
        ops = spec_ops(spec)
        stages = spec.get("stages") or [nan]
        out[t.number] = SpecFeatures(
            ops, [fam.get(o, "unknown") for o in ops],
            [fam.get(str(e.get("op")), "unknown") for n in cell for e in n.get("edges", [])],
            float(stages[0]), float(spec.get("cells_per_stage", nan)),
            [str(n.get("combine", "sum")) if len(n.get("edges", [])) > 1 else "-" for n in cell],
        )
    return out


def op_families() -> dict[str, str]:
    """op name -> family, from the default operator registry."""
    from hadanas.spaces import default_registry

    return {info.name: info.family for info in default_registry.infos()}


def _family_order() -> tuple[str, ...]:
    from hadanas.spaces import FAMILIES

    return FAMILIES


# --- Pareto front ----------------------------------------------------------------------
class ParetoData(NamedTuple):
    objectives: list[str]
    directions: list[str]
    numbers: list[int]
    values: np.ndarray  # (n, m), objectives' natural units
    on_front: np.ndarray  # (n,) bool
    status: list[str]  # trained | stopped_early | duplicate | infeasible
    hover: list[str]
    n_failed: int
    failed_numbers: list[int]  # failed trials, any objective known from their user attrs
    failed_values: np.ndarray  # (k, m); NaN where the trial never produced the value
    failed_hover: list[str]
    n_running: int


def pareto_data(src: Source, hover: bool = True) -> ParetoData:
    """Completed trials with their objective values, front membership and hover text.

    The front is taken over feasible trials only (infeasible ones never trained).
    ``hover=False`` leaves the hover texts empty (for callers that need no text).
    """
    r = _records(src)
    m = len(r.directions)
    trials = _completed(r)
    values = np.array([t.values for t in trials], dtype=float).reshape(len(trials), m)
    status = [str(t.attrs.get("status", "trained")) for t in trials]
    feasible = np.array([s != "infeasible" for s in status], dtype=bool)
    on_front = np.zeros(len(trials), dtype=bool)
    if feasible.any():
        idx = np.flatnonzero(feasible)
        on_front[idx[pareto_mask(to_minimization(values[idx], r.directions))]] = True
    keep = first_of_each(np.flatnonzero(on_front), lambda i: trials[i].number,
                         lambda i: trials[i].attrs.get("fingerprint") or tuple(values[i]))
    on_front[:] = False
    on_front[keep] = True
    labels = [_esc(o) for o in r.objectives]
    texts = [_hover(t, r.objectives, t.values or (), labels) if hover else "" for t in trials]
    failed = [t for t in r.trials if t.state == "FAIL"]
    fvals = np.full((len(failed), m), np.nan)
    for i, t in enumerate(failed):
        for k, o in enumerate(r.objectives):
            v = t.attrs.get(ATTR_OF.get(o, ""))
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                fvals[i, k] = float(v)
    known = ~np.all(np.isnan(fvals), axis=1) if len(failed) else np.zeros(0, dtype=bool)
    f_numbers = [t.number for t, k in zip(failed, known) if k]
    f_hover = [_hover(t, r.objectives, [float(v) if not math.isnan(v) else None for v in row])
               if hover else "" for t, row, k in zip(failed, fvals, known) if k]
    n_running = sum(t.state in ("RUNNING", "WAITING") for t in r.trials)
    return ParetoData(list(r.objectives), list(r.directions), [t.number for t in trials], values,
                      on_front, status, texts, len(failed), f_numbers, fvals[known], f_hover,
                      n_running)


def _esc(text: str) -> str:
    return html.escape(text) if ("<" in text or ">" in text or "&" in text) else text


_COSTS = (("params", "params"), ("flops", "flops"), ("latency_ms", "latency"))


def _hover(t: TrialRecord, objectives: Sequence[str], values: Sequence[float | None],
           labels: Sequence[str] | None = None) -> str:
    """Hover text of one trial; ``labels`` are the escaped objective names (precomputed)."""
    a = t.attrs
    state = a.get("status", "trained") if t.state == "COMPLETE" else t.state.lower()
    lines = [f"<b>trial {t.number}</b> ({_esc(str(state))})"]
    for o, lab, v in zip(objectives, labels or [_esc(o) for o in objectives], values):
        lines.append(f"{lab}: {format_value(o, v)}")
    for key, o in _COSTS:
        if o not in objectives and a.get(key) is not None:
            lines.append(f"{o}: {format_value(o, a[key])}")
    if a.get("epochs") is not None:
        lines.append(f"epochs: {a['epochs']}")
    if t.state == "FAIL" and a.get("fail_reason"):
        lines.append("failed: " + _esc(str(a["fail_reason"])[:120]))
    summary = a.get("summary") or (spec_summary(a["spec"]) if isinstance(a.get("spec"), dict) else "")
    if summary:
        # "w8/16 x1 | n1=... n2=..." -> the head line, then one line per node
        head, _, cell = _esc(str(summary)).partition(" | ")
        lines.append(head)
        if cell:
            lines.append(cell.replace(" ", "<br>"))
    return "<br>".join(lines)


# --- hypervolume -----------------------------------------------------------------------
def reference_point(values: np.ndarray, directions: Sequence[str],
                    objectives: Sequence[str]) -> list[float]:
    """A reference point (natural units) worse than every given point in every objective.

    Accuracy uses its worst possible value, 0. Any other objective uses the worst observed
    value pushed out by 10 % of its range (or of its magnitude when all values agree).
    """
    v = np.asarray(values, dtype=float).reshape(-1, len(directions))
    ref = []
    for k, (d, o) in enumerate(zip(directions, objectives)):
        col = v[:, k][np.isfinite(v[:, k])]
        if o == "accuracy" and d == "maximize":
            ref.append(0.0)
            continue
        if len(col) == 0:
            ref.append(0.0)
            continue
        lo, hi = float(col.min()), float(col.max())
        pad = 0.1 * (hi - lo) or 0.1 * abs(hi) or 1.0
        ref.append(hi + pad if d == "minimize" else lo - pad)
    return ref


class HypervolumeData(NamedTuple):
    objectives: list[str]
    directions: list[str]
    numbers: np.ndarray  # (n,) trial numbers of the completed feasible trials, ascending
    hypervolume: np.ndarray  # (n,) hypervolume of the front of trials <= numbers[i]
    front_size: np.ndarray  # (n,) size of that front
    reference: list[float]  # natural units


def hypervolume_data(src: Source, reference: Sequence[float] | None = None) -> HypervolumeData:
    """Hypervolume of the feasible front after each completed trial, in trial order.

    Incremental: the front is updated point by point and its hypervolume recomputed only
    when it changes, so a 10,000-trial study costs one small front update per trial.
    """
    r = _records(src)
    m = len(r.directions)
    trials = [t for t in _completed(r) if _feasible(t)]
    values = np.array([t.values for t in trials], dtype=float).reshape(len(trials), m)
    ref_nat = list(reference) if reference is not None else reference_point(values, r.directions,
                                                                            r.objectives)
    if len(ref_nat) != m:
        raise ConfigError(f"the reference point must have {m} entries (one per objective: "
                          f"{', '.join(r.objectives)}), but got {len(ref_nat)}.")
    ref = to_minimization(np.array([ref_nat], dtype=float), r.directions)[0]
    pts = to_minimization(values, r.directions)
    inside = np.all(pts < ref, axis=1)
    hv, size = (_running_hv_2d if m == 2 else _running_hv)(pts, inside, ref)
    return HypervolumeData(list(r.objectives), list(r.directions),
                           np.array([t.number for t in trials], dtype=int), hv, size, ref_nat)


def _running_hv(pts: np.ndarray, inside: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hypervolume and front size after each point (minimisation), any number of objectives."""
    hv = np.zeros(len(pts))
    size = np.zeros(len(pts), dtype=int)
    front = np.empty((0, pts.shape[1]))
    cur = 0.0
    for i, p in enumerate(pts):
        # A point outside the reference box adds nothing and dominates nothing inside it.
        if inside[i] and not (len(front) and np.any(np.all(front <= p, axis=1))):
            front = np.vstack([front[~np.all(p <= front, axis=1)], p])
            cur = hypervolume(front, ref)
        hv[i] = cur
        size[i] = len(front)
    return hv, size


def _running_hv_2d(pts: np.ndarray, inside: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same for two objectives in O(log f) per dominated point.

    The front is kept sorted by the first objective (so the second one strictly falls); a
    new point is weakly dominated iff the last front point not right of it is not above it.
    """
    hv = np.zeros(len(pts))
    size = np.zeros(len(pts), dtype=int)
    xs: list[float] = []
    ys: list[float] = []
    r0, r1 = float(ref[0]), float(ref[1])
    cur = 0.0
    for i, (a, b) in enumerate(pts.tolist()):
        if inside[i]:
            k = bisect.bisect_right(xs, a)
            if not (k and ys[k - 1] <= b):
                j = bisect.bisect_left(xs, a)
                e = j
                while e < len(xs) and ys[e] >= b:  # the points the new one dominates
                    e += 1
                xs[j:e] = [a]
                ys[j:e] = [b]
                cur = sum((x1 - x0) * (r1 - y0)
                          for x0, x1, y0 in zip(xs, xs[1:] + [r0], ys))
        hv[i] = cur
        size[i] = len(xs)
    return hv, size


# --- operator families -----------------------------------------------------------------
class FamilyData(NamedTuple):
    families: list[str]  # registry order, those that occur
    share_all: np.ndarray  # (f,) share of op slots in the family, over all trials with a spec
    share_front: np.ndarray  # (f,) the same over front trials
    trials_all: np.ndarray  # (f,) fraction of all trials using the family at least once
    trials_front: np.ndarray  # (f,) the same over front trials
    ops: list[str]  # every op used by some trial, most front trials first
    op_family: list[str]
    op_trials_all: np.ndarray  # (o,) fraction of all trials using the op
    op_trials_front: np.ndarray  # (o,) fraction of front trials using the op
    n_all: int
    n_front: int


def family_data(src: Source, front_numbers: Sequence[int],
                families: Mapping[str, str] | None = None,
                features: Mapping[int, SpecFeatures] | None = None) -> FamilyData:
    """Operator-family attribution: where the front's ops come from.

    "All trials" are every trial with a spec (whatever became of it: the population the
    search drew); the front is ``front_numbers``. Shares count op slots (edge ops, the
    combines of multi-edge nodes, the input fusion); unknown ops count as ``unknown``.
    """
    r = _records(src)
    fam = dict(families) if families is not None else op_families()
    feats = features if features is not None else spec_features(r, fam)
    order = list(_family_order()) + ["unknown"]
    specs = [(n, feats[n]) for n in sorted(feats)]
    front = set(front_numbers)

    def tally(rows: list[tuple[int, SpecFeatures]]) -> tuple[Counter[str], Counter[str], Counter[str]]:
        slots, fam_trials, op_trials = Counter[str](), Counter[str](), Counter[str]()
        for _, f in rows:
            slots.update(f.families)
            fam_trials.update(set(f.families))
            op_trials.update(set(f.ops))
        return slots, fam_trials, op_trials

    front_rows = [s for s in specs if s[0] in front]
    s_all, t_all, o_all = tally(specs)
    s_front, t_front, o_front = tally(front_rows)
    fams = [f for f in order if s_all[f]]
    n_slots_all, n_slots_front = sum(s_all.values()), sum(s_front.values())
    n_all, n_front = len(specs), len(front_rows)

    def frac(c: Counter[str], keys: Sequence[str], total: int) -> np.ndarray:
        return np.array([c[k] / total if total else 0.0 for k in keys], dtype=float)

    ops = sorted(o_all, key=lambda o: (-o_front[o], -o_all[o], o))
    return FamilyData(
        fams, frac(s_all, fams, n_slots_all), frac(s_front, fams, n_slots_front),
        frac(t_all, fams, n_all), frac(t_front, fams, n_front),
        ops, [fam.get(o, "unknown") for o in ops],
        frac(o_all, ops, n_all), frac(o_front, ops, n_front), n_all, n_front,
    )


# --- parallel coordinates --------------------------------------------------------------
class ParallelDim(NamedTuple):
    label: str
    values: np.ndarray  # (n,) numbers; categorical dims hold codes into ticktext
    ticktext: list[str] | None  # None for numeric dims


class ParallelData(NamedTuple):
    numbers: list[int]
    on_front: np.ndarray  # (n,) bool
    dims: list[ParallelDim]


def parallel_data(src: Source, pareto: ParetoData | None = None,
                  families: Mapping[str, str] | None = None,
                  features: Mapping[int, SpecFeatures] | None = None) -> ParallelData:
    """Objectives and the main architecture choices of every completed trial.

    Choices: the base width, cells per stage, the combine of every multi-edge node (when
    the study chose more than one), the number of Hadamard-family op slots and the family
    most edges use (ties: the first in registry order).
    """
    r = _records(src)
    d = pareto if pareto is not None else pareto_data(r)
    fam = dict(families) if families is not None else op_families()
    feats = features if features is not None else spec_features(r, fam)
    none = SpecFeatures([], [], [], float("nan"), float("nan"), [])
    rows = [feats.get(n, none) for n in d.numbers]
    dims = [ParallelDim(o, d.values[:, k], None) for k, o in enumerate(d.objectives)]
    dims.append(ParallelDim("width", np.array([f.width for f in rows], dtype=float), None))
    dims.append(ParallelDim("cells/stage", np.array([f.cells_per_stage for f in rows], dtype=float),
                            None))
    n_nodes = max((len(f.combines) for f in rows), default=0)
    for i in range(n_nodes):
        col = [f.combines[i] if i < len(f.combines) else "-" for f in rows]
        cats = sorted(set(col))
        if len([c for c in cats if c != "-"]) > 1:
            code = {c: k for k, c in enumerate(cats)}
            dims.append(ParallelDim(f"n{i + 1} combine", np.array([code[c] for c in col], dtype=float),
                                    cats))
    order = list(_family_order()) + ["unknown", "-"]
    rank = {f: k for k, f in enumerate(order)}
    hadamard = [float(sum(f not in ("conventional", "unknown") for f in r_.families)) for r_ in rows]
    main = []
    for r_ in rows:
        c = Counter(r_.edge_families)
        main.append(min(c, key=lambda f: (-c[f], rank.get(f, len(order)))) if c else "-")
    dims.append(ParallelDim("Hadamard ops", np.array(hadamard), None))
    cats = [f for f in order if f in set(main)]
    code = {c: k for k, c in enumerate(cats)}
    dims.append(ParallelDim("main edge family", np.array([code[f] for f in main], dtype=float), cats))
    return ParallelData(list(d.numbers), d.on_front.copy(), dims)


# --- trial detail ----------------------------------------------------------------------
class CellEdge(NamedTuple):
    src: int
    dst: int  # 1..n, or n + 1 for the cell output
    op: str
    family: str
    label: str
    xs: list[float]  # the drawn curve
    ys: list[float]
    label_x: float
    label_y: float


class CellGraph(NamedTuple):
    node_x: list[float]  # input (0), nodes 1..n, output (n + 1)
    node_y: list[float]
    node_label: list[str]
    node_hover: list[str]
    node_family: list[str]  # the family of the node's combine ("" for input/output/one edge)
    edges: list[CellEdge]  # op edges, then dashed edges from loose ends to the output
    head: str  # widths, cells per stage, input fusion


def _knob_text(knobs: Mapping[str, Any] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((knobs or {}).items()))


def cell_graph(spec: Mapping[str, Any], families: Mapping[str, str] | None = None,
               curve_points: int = 17) -> CellGraph:
    """Layout of a spec's cell DAG: nodes on a line, edges as arcs labelled by op.

    Edge ``k`` of a node bends above the line for even ``k`` and below for odd ``k``
    (further out for later pairs), so two edges between the same nodes never overlap.
    """
    fam = dict(families) if families is not None else op_families()
    cell = spec.get("cell") or []
    n = len(cell)
    node_x = [float(i) for i in range(n + 2)]
    node_y = [0.0] * (n + 2)
    labels = ["input"]
    hover = ["the cell input (the previous cell's output)"]
    node_fam = [""]
    for i, node in enumerate(cell, start=1):
        if len(node.get("edges", [])) > 1:
            c = str(node.get("combine", "sum"))
            k = _knob_text(node.get("combine_knobs"))
            labels.append(f"n{i}<br>{c}")
            node_fam.append(fam.get(c, "unknown"))
            hover.append(f"node {i}: its edges combined by {c}" + (f"({k})" if k else "")
                         + f" ({node_fam[-1]})")
        else:
            labels.append(f"n{i}")
            node_fam.append("")
            hover.append(f"node {i}: one edge")
    labels.append("output")
    hover.append("the cell output: the sum of the nodes no other node reads")
    node_fam.append("")
    t = np.linspace(0.0, 1.0, curve_points)
    edges: list[CellEdge] = []

    def arc(a: float, b: float, h: float) -> tuple[list[float], list[float], float, float]:
        # Quadratic Bezier from (a, 0) to (b, 0), control point ((a + b) / 2, 2h): apex at
        # height h. The label sits just outside the apex.
        xs = (1 - t) ** 2 * a + 2 * (1 - t) * t * (a + b) / 2 + t**2 * b
        ys = 2 * (1 - t) * t * 2 * h
        return xs.tolist(), ys.tolist(), (a + b) / 2, h + (0.07 if h >= 0 else -0.07)

    for i, node in enumerate(cell, start=1):
        for k, e in enumerate(node.get("edges", [])):
            src, op = int(e.get("src", 0)), str(e.get("op"))
            span = i - src
            h = (0.2 + 0.2 * span + 0.16 * (k // 2)) * (1 if k % 2 == 0 else -1)
            xs, ys, lx, ly = arc(float(src), float(i), h)
            kt = _knob_text(e.get("knobs"))
            edges.append(CellEdge(src, i, op, fam.get(op, "unknown"), op + (f"({kt})" if kt else ""),
                                  xs, ys, lx, ly))
    used = {int(e.get("src", 0)) for node in cell for e in node.get("edges", [])}
    for i in range(1, n + 1):
        if i not in used:
            span = n + 1 - i
            h = 0.0 if span == 1 else -(0.2 + 0.2 * span)
            xs, ys, lx, ly = arc(float(i), float(n + 1), h)
            edges.append(CellEdge(i, n + 1, "", "", "", xs, ys, lx, ly))
    head = (f"stages {'/'.join(map(str, spec.get('stages', [])))}, "
            f"{spec.get('cells_per_stage', 1)} cell(s) per stage")
    if spec.get("input_fusion"):
        head += f", input fusion {spec['input_fusion']}"
        if spec.get("fusion_point", "stem") != "stem":
            head += f" at the {spec['fusion_point']}"
    return CellGraph(node_x, node_y, labels, hover, node_fam, edges, head)


def export_command(study_name: str, number: int, storage_url: str | None = None) -> str:
    """The ``hadanas export`` command line for one trial (storage omitted when default)."""
    from hadanas.search import DEFAULT_STORAGE, mask_url

    parts = ["hadanas", "export"]
    if storage_url and storage_url != DEFAULT_STORAGE:
        parts += ["--storage", shlex.quote(mask_url(storage_url))]
    parts += ["--study", shlex.quote(study_name), "--trial", str(number), "--out", f"export-{number}"]
    return " ".join(parts)


class TrialDetail(NamedTuple):
    number: int
    title: str
    on_front: bool
    metrics: list[tuple[str, str]]
    spec_json: str  # indented JSON, "" without a spec
    export_command: str  # "" for a trial that cannot be exported (no completed training)
    graph: CellGraph | None


def trial_detail(t: TrialRecord, objectives: Sequence[str], study_name: str,
                 storage_url: str | None = None, on_front: bool = False,
                 families: Mapping[str, str] | None = None) -> TrialDetail:
    """Metrics, spec JSON, cell graph and export command of one trial."""
    a = t.attrs
    status = str(a.get("status", "trained")) if t.state == "COMPLETE" else t.state.lower()
    metrics: list[tuple[str, str]] = [("state", status + (", on the Pareto front" if on_front else ""))]
    for o, v in zip(objectives, t.values or ()):
        metrics.append((o, format_value(o, v)))
    for key, o in (("val_accuracy", "accuracy"), ("params", "params"), ("flops", "flops"),
                   ("latency_ms", "latency")):
        if a.get(key) is not None and o not in objectives:
            metrics.append((o, format_value(o, a[key])))
    if a.get("epochs") is not None:
        metrics.append(("epochs", str(a["epochs"])))
    if isinstance(a.get("history"), list) and a["history"]:
        metrics.append(("val accuracy per epoch",
                        " ".join(f"{h:.4f}" if isinstance(h, (int, float)) else str(h)
                                 for h in a["history"])))
    if a.get("wall_time_s") is not None:
        metrics.append(("wall time", f"{float(a['wall_time_s']):.1f} s"))
    for key in ("device", "node_id", "fingerprint", "duplicate_of", "attempt", "fail_reason"):
        if a.get(key) not in (None, ""):
            metrics.append((key.replace("_", " "), str(a[key])))
    spec = a.get("spec") if isinstance(a.get("spec"), dict) else None
    exportable = t.state == "COMPLETE" and status in ("trained", "stopped_early", "duplicate")
    return TrialDetail(
        t.number, f"trial {t.number} ({status})", on_front, metrics,
        json.dumps(spec, indent=2, sort_keys=True) if spec else "",
        export_command(study_name, t.number, storage_url) if exportable and spec else "",
        cell_graph(spec, families) if spec else None,
    )


# --- ablation overlay ------------------------------------------------------------------
class CompareData(NamedTuple):
    studies: list[str]
    objectives: list[str]
    directions: list[str]
    fronts: list[np.ndarray]  # per study (f, m), natural units, sorted by the 2nd objective
    front_numbers: list[list[int]]
    hypervolume: list[float]  # per study, against ``reference``
    n_complete: list[int]  # completed feasible trials per study
    reference: list[float]


def compare_data(studies: Sequence[StudyRecords], reference: Sequence[float] | None = None) -> CompareData:
    """Feasible fronts of several studies with the same objectives, and their hypervolumes
    against one common reference point."""
    if not studies:
        raise ConfigError("compare_data needs at least one study.")
    first = studies[0]
    for s in studies[1:]:
        if list(s.objectives) != list(first.objectives) or list(s.directions) != list(first.directions):
            raise ConfigError(
                f"study '{s.name}' optimises {', '.join(s.objectives)} ({', '.join(s.directions)}), "
                f"but '{first.name}' optimises {', '.join(first.objectives)} "
                f"({', '.join(first.directions)}); only studies with the same objectives overlay."
            )
    m = len(first.directions)
    per = []
    for s in studies:
        trials = [t for t in _completed(s) if _feasible(t)]
        per.append((trials, np.array([t.values for t in trials], dtype=float).reshape(len(trials), m)))
    every = np.vstack([v for _, v in per]) if per else np.empty((0, m))
    ref = list(reference) if reference is not None else reference_point(every, first.directions,
                                                                        first.objectives)
    if len(ref) != m:
        raise ConfigError(f"the reference point must have {m} entries, but got {len(ref)}.")
    ref_min = to_minimization(np.array([ref], dtype=float), first.directions)[0]
    fronts, numbers, hvs = [], [], []
    for trials, v in per:
        mask = pareto_mask(to_minimization(v, first.directions)) if len(v) else np.zeros(0, bool)
        idx = np.flatnonzero(mask)
        idx = np.array(sorted(first_of_each(idx, lambda i: trials[i].number, lambda i: tuple(v[i]))),
                       dtype=int)
        if m > 1:
            idx = idx[np.argsort(v[idx, 1], kind="stable")]
        fronts.append(v[idx])
        numbers.append([trials[i].number for i in idx])
        hvs.append(hypervolume(to_minimization(v, first.directions), ref_min) if len(v) else 0.0)
    return CompareData([s.name for s in studies], list(first.objectives), list(first.directions),
                       fronts, numbers, hvs, [len(t) for t, _ in per], ref)
