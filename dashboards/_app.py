"""What the report and the live server show: shaped data and figures as JSON payloads.

A page draws two parts:

* the *front* part (:func:`build_front`): counts, the Pareto front figure, the front
  table, the hypervolume over trials and the ablation overlay. It needs objective values
  and a few small attrs only, so it is fast even for a large study;
* the *views* part (:func:`build_views`): operator-family attribution, parallel
  coordinates and trial details, which need every trial's spec.

:class:`Dashboard` keeps readers on the store and rebuilds a part only when the stored
trials changed. The static report embeds both parts (:func:`build_payload`); the server
serves them one after the other, so the front shows first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from optuna.storages import RDBStorage
from plotly.io.json import to_json_plotly

from hadanas._logging import get_logger
from hadanas.dashboards._data import (
    ParetoData,
    TrialDetail,
    compare_data,
    family_data,
    format_value,
    hypervolume_data,
    op_families,
    parallel_data,
    pareto_data,
    reference_point,
    spec_features,
    spec_summary,
    trial_detail,
)
from hadanas.dashboards._figures import (
    cell_graph_figure,
    compare_figure,
    family_figure,
    hypervolume_figure,
    ops_figure,
    parallel_figure,
    pareto_figure,
)
from hadanas.dashboards._records import StoreReader, StudyRecords, TrialRecord
from hadanas.search._pareto import to_minimization

__all__ = [
    "Dashboard",
    "build_front",
    "build_payload",
    "build_views",
    "detail_json",
    "payload_json",
    "records_version",
]

log = get_logger(__name__)

Details = Literal["none", "front", "all"]
#: The report embeds every trial's detail up to this many trials, else the front's only.
DETAIL_LIMIT = 300
_META_KEYS = ("space", "dataset", "hadanas_version", "created_at")
_TEMPLATE: dict[str, Any] | None = None


def _template() -> dict[str, Any]:
    """plotly_white as a plain dict, built once (the page applies it to every figure)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        import plotly.io as pio

        _TEMPLATE = pio.templates["plotly_white"].to_plotly_json()
    return _TEMPLATE


def records_version(records: Sequence[StudyRecords]) -> str:
    """Changes whenever a trial is added or changes state (finished trials never change)."""
    parts = []
    for r in records:
        counts: dict[str, int] = {}
        for t in r.trials:
            counts[t.state] = counts.get(t.state, 0) + 1
        top = r.trials[-1].number if r.trials else -1
        parts.append(f"{r.name}:{len(r.trials)}:{top}:" + ",".join(
            f"{k}{v}" for k, v in sorted(counts.items())))
    return "|".join(parts)


def detail_json(d: TrialDetail) -> dict[str, Any]:
    return {
        "number": d.number, "title": d.title, "on_front": d.on_front,
        "metrics": [list(m) for m in d.metrics], "spec_json": d.spec_json,
        "export": d.export_command,
        "graph": cell_graph_figure(d.graph, title=f"trial {d.number} cell", template=None).to_plotly_json()
        if d.graph is not None else None,
    }


def payload_json(payload: Mapping[str, Any]) -> str:
    """A payload as JSON (NumPy arrays as Plotly's typed arrays)."""
    return to_json_plotly(dict(payload))


def _default_trial(d: ParetoData) -> int | None:
    """The front trial best in the first objective (else the last completed trial)."""
    if not d.on_front.any():
        return d.numbers[-1] if d.numbers else None
    idx = np.flatnonzero(d.on_front)
    best = idx[np.argmin(to_minimization(d.values[idx], d.directions)[:, 0])]
    return int(d.numbers[best])


def _common_reference(studies: Sequence[StudyRecords]) -> list[float]:
    main = studies[0]
    feas = [t.values for r in studies for t in r.trials
            if t.state == "COMPLETE" and t.values is not None and all(np.isfinite(t.values))
            and t.attrs.get("status") != "infeasible"]
    return reference_point(np.array(feas, dtype=float).reshape(len(feas), len(main.directions)),
                           main.directions, main.objectives)


def build_front(main: StudyRecords, compare: Sequence[StudyRecords] = (),
                reference: Sequence[float] | None = None,
                timings: dict[str, float] | None = None) -> dict[str, Any]:
    """The front part: counts, Pareto front, front table, hypervolume, ablation overlay.

    Needs only objective values and light attrs (no specs). Without ``reference``, one
    reference point common to ``main`` and ``compare`` is derived from their trials.
    """
    t0 = time.perf_counter()
    pd = pareto_data(main)
    ref = list(reference) if reference is not None else _common_reference([main, *compare])
    hv = hypervolume_data(main, ref)
    cmp = compare_data([main, *compare], ref) if compare else None
    front_numbers = [n for n, f in zip(pd.numbers, pd.on_front) if f]
    by_number = {t.number: t for t in main.trials}
    order = sorted(front_numbers, key=lambda n: tuple(to_minimization(
        np.array([by_number[n].values]), main.directions)[0]))
    rows = []
    for n in order:
        a = by_number[n].attrs
        summary = a.get("summary") or (spec_summary(a["spec"]) if isinstance(a.get("spec"), dict) else "")
        rows.append({"number": n,
                     "values": [format_value(o, v) for o, v in zip(main.objectives, by_number[n].values or ())],
                     "params": format_value("params", a.get("params")), "summary": str(summary)})
    t1 = time.perf_counter()
    figures = {
        "pareto": pareto_figure(pd, title=f"Pareto front of '{main.name}'", template=None),
        "hypervolume": hypervolume_figure(hv, template=None),
        "compare": compare_figure(cmp, template=None) if cmp is not None else None,
    }
    part = {
        "study": main.name,
        "version": records_version([main, *compare]),
        "objectives": list(main.objectives), "directions": list(main.directions),
        "meta": {k: str(main.attrs[k]) for k in _META_KEYS if main.attrs.get(k)},
        "counts": {
            "total": len(main.trials), "complete": len(pd.numbers), "front": len(front_numbers),
            "failed": pd.n_failed, "running": pd.n_running,
            "infeasible": sum(s == "infeasible" for s in pd.status),
        },
        "reference": [float(v) for v in ref],
        "compare": [r.name for r in compare],
        "figures": {k: (f.to_plotly_json() if f is not None else None) for k, f in figures.items()},
        "front": rows,
        "front_numbers": front_numbers,
        "default_trial": _default_trial(pd),
        "template": _template(),
    }
    if timings is not None:
        timings["shape"] = timings.get("shape", 0.0) + t1 - t0
        timings["figures"] = timings.get("figures", 0.0) + time.perf_counter() - t1
    return part


def build_views(main: StudyRecords, front_numbers: Sequence[int], storage_url: str | None = None,
                details: Details = "none", default_trial: int | None = None,
                families: Mapping[str, str] | None = None,
                timings: dict[str, float] | None = None,
                full_trial: Callable[[int], TrialRecord] | None = None) -> dict[str, Any]:
    """The views part: operator families, ops on the front, parallel coordinates, details.

    ``main`` must carry specs (``StoreReader.read(specs=True)`` or the Optuna API);
    ``full_trial(number)`` gives a trial with all its attrs for the details (default: the
    record in ``main``).
    """
    t0 = time.perf_counter()
    fams = dict(families) if families is not None else op_families()
    pd = pareto_data(main, hover=False)
    feats = spec_features(main, fams)
    fd = family_data(main, front_numbers, fams, feats)
    par = parallel_data(main, pd, fams, feats)
    by_number = {t.number: t for t in main.trials}
    front = set(front_numbers)
    if details == "all":
        chosen = [t.number for t in main.trials if t.state in ("COMPLETE", "FAIL")]
    elif details == "front":
        chosen = list(front_numbers)
    else:
        chosen = []
    if details != "none" and default_trial is not None and default_trial not in chosen:
        chosen.append(default_trial)
    t1 = time.perf_counter()
    full = full_trial or by_number.__getitem__
    detail = {str(n): detail_json(trial_detail(full(n), main.objectives, main.name, storage_url,
                                               n in front, fams))
              for n in chosen if n in by_number}
    figures = {
        "families": family_figure(fd, template=None),
        "ops": ops_figure(fd, template=None),
        "parallel": parallel_figure(par, template=None) if len(pd.numbers) else None,
    }
    part = {
        "version": records_version([main]),
        "figures": {k: (f.to_plotly_json() if f is not None else None) for k, f in figures.items()},
        "details": detail,
    }
    if timings is not None:
        timings["shape"] = timings.get("shape", 0.0) + t1 - t0
        timings["figures"] = timings.get("figures", 0.0) + time.perf_counter() - t1
    return part


def build_payload(main: StudyRecords, compare: Sequence[StudyRecords] = (),
                  reference: Sequence[float] | None = None, storage_url: str | None = None,
                  details: Details = "front", families: Mapping[str, str] | None = None,
                  timings: dict[str, float] | None = None,
                  full_trial: Callable[[int], TrialRecord] | None = None) -> dict[str, Any]:
    """Both parts in one payload (what the static report embeds)."""
    front = build_front(main, compare, reference, timings)
    views = build_views(main, front["front_numbers"], storage_url, details, front["default_trial"],
                        families, timings, full_trial)
    return {**front, "figures": {**front["figures"], **views["figures"]},
            "details": views["details"]}


class Dashboard:
    """Live view of one study (and studies to overlay) in an RDB store.

    Thread-safe. Reading never writes to the store; each part is rebuilt only when
    :func:`records_version` changes.
    """

    def __init__(self, storage: RDBStorage, study: str, compare: Sequence[str] = (),
                 reference: Sequence[float] | None = None, storage_url: str | None = None,
                 interval_s: float = 2.0) -> None:
        self.readers = [StoreReader(storage, study), *(StoreReader(storage, c) for c in compare)]
        self.study = study
        self.reference = list(reference) if reference is not None else None
        self.storage_url = storage_url
        self.interval_s = interval_s
        self._families = op_families()
        self._lock = threading.Lock()
        self._front: tuple[str, bytes, dict[str, Any]] | None = None
        self._views: tuple[str, bytes] | None = None
        self._warm_up()

    def _warm_up(self) -> None:
        """Build the payload of an empty study once, so Plotly's lazily imported classes
        and the shared template load at start-up rather than in the first request."""
        directions = self.readers[0].directions
        empty = StudyRecords(self.study, directions,
                             [f"objective {i}" for i in range(len(directions))], {}, [])
        payload_json(build_payload(empty, families=self._families, details="none"))

    def version(self) -> dict[str, Any]:
        recs = [r.read() for r in self.readers]
        main = recs[0]
        return {"version": records_version(recs), "trials": len(main.trials),
                "complete": sum(t.state == "COMPLETE" for t in main.trials)}

    def front(self) -> tuple[str, bytes, dict[str, float]]:
        """The front part: (version, JSON bytes, timings in seconds).

        Timings: wall time per stage (read, shape, figures, json) and ``cpu``, the CPU
        time of the calling thread for the whole call (the server's own work, whatever
        else runs on the machine).
        """
        c0 = time.thread_time()
        with self._lock:
            version, body, timings = self._front_locked()
        timings["cpu"] = time.thread_time() - c0
        return version, body, timings

    def _front_locked(self) -> tuple[str, bytes, dict[str, float]]:
        t0 = time.perf_counter()
        recs = [r.read() for r in self.readers]
        version = records_version(recs)
        timings: dict[str, float] = {"read": time.perf_counter() - t0}
        if self._front is not None and self._front[0] == version:
            return version, self._front[1], {**timings, "cached": 1.0}
        part = build_front(recs[0], recs[1:], self.reference, timings)
        t1 = time.perf_counter()
        body = payload_json(part).encode()
        timings["json"] = time.perf_counter() - t1
        self._front = (version, body, {"front_numbers": part["front_numbers"],
                                       "objectives": part["objectives"]})
        return version, body, timings

    def views(self) -> tuple[str, bytes, dict[str, float]]:
        """The views part (rebuilt when the main study changed)."""
        c0 = time.thread_time()
        with self._lock:
            t0 = time.perf_counter()
            main = self.readers[0].read(specs=True)
            version = records_version([main])
            timings: dict[str, float] = {"read": time.perf_counter() - t0}
            if self._views is not None and self._views[0] == version:
                return version, self._views[1], {**timings, "cached": 1.0,
                                                 "cpu": time.thread_time() - c0}
            if self._front is None or self._front[0].split("|")[0] != version:
                self._front_locked()
            front_numbers = self._front[2]["front_numbers"] if self._front is not None else []
            part = build_views(main, front_numbers, self.storage_url, "none", None,
                               self._families, timings)
            t1 = time.perf_counter()
            body = payload_json(part).encode()
            timings["json"] = time.perf_counter() - t1
            self._views = (version, body)
        timings["cpu"] = time.thread_time() - c0
        return version, body, timings

    def trial(self, number: int) -> bytes:
        """One trial's detail as JSON; raises KeyError for an unknown trial number."""
        rec = self.readers[0].full_trial(number)
        with self._lock:
            if self._front is None:
                self._front_locked()
            info = self._front[2] if self._front is not None else {}
        d = trial_detail(rec, info.get("objectives", []), self.study, self.storage_url,
                         number in set(info.get("front_numbers", [])), self._families)
        return payload_json(detail_json(d)).encode()
