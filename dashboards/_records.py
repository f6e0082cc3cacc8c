"""Read a stored study into light records: the one place the dashboards touch the store.

Two paths give the same :class:`StudyRecords`:

* :func:`records_from_study` goes through Optuna's public API (any storage). Optuna's
  RDB storage builds an ORM object per row, about 1 ms a trial on a small machine, so a
  study of 10,000 trials takes tens of seconds to load that way.
* :class:`StoreReader` reads an RDB store (SQLite, PostgreSQL) with a few SQLAlchemy Core
  ``SELECT`` statements over Optuna's own table objects (so column names follow the
  installed Optuna, whose schema version ``RDBStorage`` checks on open), and keeps the
  trials that finished: a finished trial never changes, so each refresh loads only new
  and unfinished trials. It never writes, and every statement is a short read, so a
  search writing to the same SQLite file (WAL mode) is never blocked by it.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from hadanas._logging import get_logger
from hadanas.exceptions import StoreError, close_matches

__all__ = [
    "LIGHT_KEYS",
    "SPEC_KEY",
    "StoreReader",
    "StudyRecords",
    "TrialRecord",
    "directions_of",
    "records_from_study",
]

log = get_logger(__name__)

#: Trial user attrs the overview (front, hypervolume, hover text) needs.
LIGHT_KEYS: tuple[str, ...] = (
    "summary", "status", "params", "flops", "latency_ms", "epochs", "fail_reason",
)
#: Read separately, only for the views that need it (operator families, choices).
SPEC_KEY = "spec"
_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
_IN_CHUNK = 500  # ids per "IN (...)" list: under SQLite's variable limit


class TrialRecord(NamedTuple):
    number: int
    trial_id: int
    state: str  # TrialState name: COMPLETE | FAIL | RUNNING | WAITING | PRUNED
    values: tuple[float, ...] | None
    attrs: dict[str, Any]  # user attrs: all, or StoreReader's non-null LIGHT_KEYS (+ spec)


class StudyRecords(NamedTuple):
    name: str
    directions: list[str]  # "maximize" | "minimize", one per objective
    objectives: list[str]
    attrs: dict[str, Any]  # study user attrs
    trials: list[TrialRecord]  # by trial number


def directions_of(study: optuna.Study) -> list[str]:
    return ["maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize"
            for d in study.directions]


def _objective_names(attrs: Mapping[str, Any], n: int) -> list[str]:
    names = attrs.get("objectives")
    if isinstance(names, list) and len(names) == n and all(isinstance(x, str) for x in names):
        return list(names)
    return [f"objective {i}" for i in range(n)]


def records_from_study(study: optuna.Study) -> StudyRecords:
    """The records of ``study`` through Optuna's public API (works with any storage)."""
    attrs = dict(study.user_attrs)
    directions = directions_of(study)
    trials = [
        TrialRecord(t.number, t._trial_id, t.state.name,
                    tuple(float(v) for v in t.values) if t.values is not None else None,
                    dict(t.user_attrs))
        for t in study.get_trials(deepcopy=False)
    ]
    trials.sort(key=lambda r: r.number)
    return StudyRecords(study.study_name, directions, _objective_names(attrs, len(directions)),
                        attrs, trials)


_FINISHED_NAMES = frozenset(s.name for s in _FINISHED)


def _value_kinds() -> dict[Any, str]:
    from optuna.storages._rdb.models import TrialValueModel

    kinds = TrialValueModel.TrialValueType
    return {**{k: k.name for k in kinds}, **{k.name: k.name for k in kinds}}


_VALUE_KIND = _value_kinds()


#: A state column value (a TrialState, or its name) -> the name. Enum ``.name`` is slow.
_STATE_NAME: dict[Any, str] = {**{s: s.name for s in TrialState}, **{s.name: s.name for s in TrialState}}


def _value(value: float | None, value_type: Any) -> float:
    """An objective value from its stored (value, value_type) pair.

    ``value_type`` is Optuna's ``TrialValueModel.TrialValueType`` (a member, or its name
    when it comes out of an aggregate): FINITE, INF_POS or INF_NEG.
    """
    kind = _VALUE_KIND.get(value_type, value_type)
    if kind == "INF_POS":
        return math.inf
    if kind == "INF_NEG":
        return -math.inf
    return float(value) if value is not None else math.nan


def _loads_many(raw: Sequence[str]) -> list[Any]:
    """``[json.loads(x) for x in raw]`` as one decode of a JSON array (much faster)."""
    return json.loads("[" + ",".join(raw) + "]") if raw else []


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), _IN_CHUNK):
        yield ids[i: i + _IN_CHUNK]


class StoreReader:
    """Incremental, read-only reader of one study in an RDB store.

    ``read()`` is thread-safe; it returns a fresh :class:`StudyRecords` each call.
    """

    def __init__(self, storage: RDBStorage, study_name: str) -> None:
        from optuna.storages._rdb import models

        self.storage = storage
        self.study_name = study_name
        try:
            self.study_id = storage.get_study_id_from_name(study_name)
        except KeyError:
            names = [s.study_name for s in storage.get_all_studies()]
            raise StoreError(
                f"no study named '{study_name}' in the store." + close_matches(study_name, names)
                + (f" Studies: {', '.join(names[-10:])}." if names else " The store is empty.")
            ) from None
        self._m = models
        self._lock = threading.Lock()
        self._finished: dict[int, TrialRecord] = {}  # trial_id -> record; never changes again
        self._with_spec: set[int] = set()  # finished trials whose spec is loaded (or absent)
        self._id_of: dict[int, int] = {}  # trial number -> trial_id
        self._directions = ["maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize"
                            for d in storage.get_study_directions(self.study_id)]

    @property
    def directions(self) -> list[str]:
        return list(self._directions)

    def read(self, specs: bool = False) -> StudyRecords:
        """The study's trials by number; with ``specs``, every trial's attrs hold its spec."""
        with self._lock:
            return self._read(specs)

    def _ids_clause(self, column: Any, ids: Sequence[int]) -> list[Any]:
        """``column IN (ids)`` in chunks, or one sub-select over the study for many ids."""
        import sqlalchemy as sa

        T = self._m.TrialModel.__table__
        if len(ids) > _IN_CHUNK:
            return [column.in_(sa.select(T.c.trial_id).where(T.c.study_id == self.study_id))]
        return [column.in_(list(c)) for c in _chunks(ids)]

    def _read(self, specs: bool) -> StudyRecords:
        import sqlalchemy as sa

        m = self._m
        T = m.TrialModel.__table__
        V = m.TrialValueModel.__table__
        UA = m.TrialUserAttributeModel.__table__
        n_obj = len(self._directions)
        attrs = dict(self.storage.get_study_user_attrs(self.study_id))
        values: dict[int, tuple[float, ...]] = {}
        uattrs: dict[int, dict[str, Any]] = {}
        spec_of: dict[int, Any] = {}
        with self.storage.engine.connect() as conn:
            # Trials first: a trial seen finished here had its values and attrs committed
            # before (Optuna writes values and the final state in one transaction).
            rows = conn.execute(
                sa.select(T.c.trial_id, T.c.number, T.c.state).where(T.c.study_id == self.study_id)
            ).all()
            todo = sorted(r.trial_id for r in rows if r.trial_id not in self._finished)
            wanted = set(todo)
            if todo:
                # One row per trial (conditional aggregation), not one per value or attr:
                # the database does the pivot, Python handles 10x fewer rows.
                cols = []
                for k in range(n_obj):
                    cols.append(sa.func.max(sa.case((V.c.objective == k, V.c.value))))
                    cols.append(sa.func.max(sa.case((V.c.objective == k, V.c.value_type))))
                for cond in self._ids_clause(V.c.trial_id, todo):
                    q = sa.select(V.c.trial_id, *cols).where(cond).group_by(V.c.trial_id)
                    for row in conn.execute(q).all():
                        if row[0] in wanted and all(row[2 + 2 * k] is not None for k in range(n_obj)):
                            values[row[0]] = tuple(_value(row[1 + 2 * k], row[2 + 2 * k])
                                                   for k in range(n_obj))
                # The database also writes each trial's light attrs as one JSON object
                # ('{"summary": ..., "status": ...}', null where unset), so Python decodes
                # one array instead of handling every attr.
                obj: Any = None
                for i, k in enumerate(LIGHT_KEYS):
                    head = sa.literal(("{" if i == 0 else ",") + json.dumps(k) + ":", sa.Text)
                    val = sa.func.coalesce(sa.func.max(sa.case((UA.c.key == k, UA.c.value_json))),
                                           sa.literal("null", sa.Text))
                    obj = head + val if obj is None else obj + head + val
                obj = obj + sa.literal("}", sa.Text)
                found: list[int] = []
                raw: list[str] = []
                for cond in self._ids_clause(UA.c.trial_id, todo):
                    q = (sa.select(UA.c.trial_id, obj)
                         .where(cond, UA.c.key.in_(LIGHT_KEYS)).group_by(UA.c.trial_id))
                    for tid, text in conn.execute(q).all():
                        if tid in wanted:
                            found.append(tid)
                            raw.append(text)
                for tid, d in zip(found, _loads_many(raw)):
                    uattrs[tid] = {k: v for k, v in d.items() if v is not None}
            if specs:
                need = sorted(r.trial_id for r in rows if r.trial_id not in self._with_spec)
                need_set = set(need)
                found_ids: list[int] = []
                raw = []
                for cond in self._ids_clause(UA.c.trial_id, need) if need else []:
                    q = sa.select(UA.c.trial_id, UA.c.value_json).where(cond, UA.c.key == SPEC_KEY)
                    for tid, vj in conn.execute(q).all():
                        if tid in need_set and vj is not None:
                            found_ids.append(tid)
                            raw.append(vj)
                spec_of = dict(zip(found_ids, _loads_many(raw)))
        trials: list[TrialRecord] = []
        finished = self._finished
        for trial_id, number, raw_state in rows:
            self._id_of[number] = trial_id
            rec = finished.get(trial_id)
            if rec is None:
                state = _STATE_NAME.get(raw_state) or str(raw_state)
                tv = values.get(trial_id) if state == "COMPLETE" else None
                rec = TrialRecord(int(number), int(trial_id), state, tv, uattrs.get(trial_id, {}))
                if state in _FINISHED_NAMES:
                    finished[trial_id] = rec
            if trial_id in spec_of:
                rec.attrs[SPEC_KEY] = spec_of[trial_id]
                if rec.state in _FINISHED_NAMES:
                    self._with_spec.add(trial_id)
            elif specs and trial_id not in self._with_spec and rec.state in _FINISHED_NAMES:
                self._with_spec.add(trial_id)  # a finished trial without a spec: none to come
            trials.append(rec)
        trials.sort(key=lambda t: t.number)
        return StudyRecords(self.study_name, list(self._directions),
                            _objective_names(attrs, n_obj), attrs, trials)

    def full_trial(self, number: int) -> TrialRecord:
        """One trial with every user attr (for the trial detail)."""
        with self._lock:
            trial_id = self._id_of.get(number)
        if trial_id is None:
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        t = self.storage.get_trial(trial_id)
        return TrialRecord(t.number, trial_id, t.state.name,
                           tuple(float(v) for v in t.values) if t.values is not None else None,
                           dict(t.user_attrs))
