"""A storage wrapper that writes each trial in a few transactions instead of dozens.

Optuna writes every ``suggest_*`` and every ``set_user_attr`` as its own transaction. A
hadanas trial records ~8 parameters and ~15 attributes, so a plain RDB store pays ~25
commits per trial, which dominates the cost of a cheap trial. :class:`BatchedStorage`
keeps the writes of the trials this process created in memory and commits them together
at two moments the runner chooses:

* :meth:`BatchedStorage.flush` — before a trial is handed to a worker, so a killed driver
  leaves a RUNNING trial whose parameters are stored (``--resume`` queues it again);
* ``set_trial_state_values`` — when the trial finishes: its remaining attributes, values
  and state in one transaction, so a finished trial is stored whole or not at all.

Reads of those trials (``get_trial``, ``get_all_trials``) see the buffered writes, so the
sampler and the runner observe exactly what a plain store would show. Everything else
(other processes' trials, studies, system attributes, artifacts) passes straight through.
"""

from __future__ import annotations

import copy
import datetime
import threading
from collections.abc import Container, Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.study._frozen import FrozenStudy
from optuna.study._study_direction import StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = ["BatchedStorage"]


def _check_json(key: str, value: Any) -> None:
    """Raise now, as Optuna's storage does, for an attribute value JSON cannot hold (a buffered
    one would fail only when the trial is written, leaving it RUNNING)."""
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"attribute {key!r}: {exc}") from None


class _Held:
    __slots__ = ("trial", "params", "attrs", "sys_attrs", "study_id")

    def __init__(self, trial: FrozenTrial, study_id: int | None) -> None:
        self.study_id = study_id
        self.trial = trial  # the trial as a plain store would show it, buffered writes included
        self.params: dict[str, tuple[float, BaseDistribution]] = {}
        self.attrs: dict[str, Any] = {}
        self.sys_attrs: dict[str, Any] = {}


class BatchedStorage(BaseStorage):
    """Wraps ``optuna.storages.get_storage(rdb)``; see the module docstring."""

    def __init__(self, rdb: RDBStorage) -> None:
        import optuna

        self._rdb = rdb
        self._fast = _has_private_writers(rdb)
        # Reads: our own incremental cache over a few Core SELECTs when the RDB's tables are
        # known; otherwise Optuna's read cache (one ORM object per row, ~1-5 ms a trial).
        self._inner = rdb if self._fast else optuna.storages.get_storage(rdb)
        self._caches: dict[int, _StudyCache] = {}
        self._held: dict[int, _Held] = {}
        self._finished: dict[int, FrozenTrial] = {}
        self._dists: dict[tuple[int, str], BaseDistribution] = {}  # (study id, name): the study's
        self._lock = threading.RLock()
        #: commits made on behalf of held trials (for benchmarks and tests)
        self.commits = 0
        #: system attrs of every trial this process asks for: written with a new trial (same
        #: transaction), and with a queued one when this process takes it
        self.creation_attrs: dict[str, Any] = {}

    # -- the trials this process holds ---------------------------------------------------
    def _hold(self, trial_id: int, trial: FrozenTrial | None = None, study_id: int | None = None) -> None:
        if study_id is None:
            study_id = next((sid for sid, c in self._caches.items() if trial_id in c.by_id), None)
        self._held[trial_id] = _Held(trial if trial is not None else self._inner.get_trial(trial_id),
                                     study_id)

    def flush(self, trial_id: int) -> None:
        """Commit the buffered writes of ``trial_id`` (it stays held and RUNNING)."""
        with self._lock:
            h = self._held.get(trial_id)
            if h is None or not (h.params or h.attrs or h.sys_attrs):
                return
            self._write(h, None, None)
            h.params.clear()
            h.attrs.clear()
            h.sys_attrs.clear()

    def _write(self, h: _Held, state: TrialState | None, values: Sequence[float] | None) -> bool:
        tid = h.trial._trial_id
        self.commits += 1
        if not self._fast:  # an Optuna without the private writers: correct, one call each
            for name, (v, dist) in h.params.items():
                self._inner.set_trial_param(tid, name, v, dist)
            for k, v in h.attrs.items():
                self._inner.set_trial_user_attr(tid, k, v)
            if state is None:
                return True
            return self._inner.set_trial_state_values(tid, state, values)
        return self._write_rows(tid, h, state, values)

    def _write_rows(self, tid: int, h: _Held, state: TrialState | None,
                    values: Sequence[float] | None) -> bool:
        """One transaction of at most five statements, whatever the number of attributes."""
        import json

        import sqlalchemy as sa
        from optuna.distributions import check_distribution_compatibility, distribution_to_json
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        for name, (_, dist) in h.params.items():
            self._check_distribution(h, name, dist)
        with _create_scoped_session(self._rdb.scoped_session) as session:
            if state is not None:
                upd = sa.update(models.TrialModel.__table__).where(
                    models.TrialModel.trial_id == tid,
                    models.TrialModel.state == TrialState.RUNNING,
                ).values(state=state, **({"datetime_complete": datetime.datetime.now()}
                                         if state.is_finished() else {}))
                if session.execute(upd).rowcount != 1:  # another process finished it first
                    session.rollback()
                    self._rdb.check_trial_is_updatable(tid, self._inner.get_trial(tid).state)
                    return False
            if h.params:
                session.execute(sa.insert(models.TrialParamModel.__table__), [
                    {"trial_id": tid, "param_name": n, "param_value": v,
                     "distribution_json": distribution_to_json(d)}
                    for n, (v, d) in h.params.items()])
            for table, attrs in ((models.TrialUserAttributeModel.__table__, h.attrs),
                                 (models.TrialSystemAttributeModel.__table__, h.sys_attrs)):
                if attrs:
                    session.execute(sa.delete(table).where(table.c.trial_id == tid,
                                                           table.c.key.in_(list(attrs))))
                    session.execute(sa.insert(table), [
                        {"trial_id": tid, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()])
            if values:
                rows = []
                for i, v in enumerate(values):
                    stored, kind = models.TrialValueModel.value_to_stored_repr(v)
                    rows.append({"trial_id": tid, "objective": i, "value": stored, "value_type": kind})
                session.execute(sa.insert(models.TrialValueModel.__table__), rows)
        return True

    def _check_distribution(self, h: _Held, name: str, dist: BaseDistribution) -> None:
        """Raise as Optuna's storage does when ``dist`` differs from the study's distribution
        of ``name`` (checked when the parameter is set, not when the trial is written)."""
        from optuna.distributions import check_distribution_compatibility

        key = (h.study_id, name)
        if key not in self._dists:  # once per name: the study's stored distribution
            self._dists[key] = self._stored_distribution(h, name) or dist
        check_distribution_compatibility(self._dists[key], dist)

    def _stored_distribution(self, h: _Held, name: str) -> BaseDistribution | None:
        from optuna.distributions import json_to_distribution
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        with _create_scoped_session(self._rdb.scoped_session) as session:
            row = session.query(models.TrialModel.study_id).filter(
                models.TrialModel.trial_id == h.trial._trial_id).one()
            rec = (session.query(models.TrialParamModel.distribution_json)
                   .join(models.TrialModel)
                   .filter(models.TrialModel.study_id == row.study_id)
                   .filter(models.TrialParamModel.param_name == name).first())
        return json_to_distribution(rec[0]) if rec is not None else None

    # -- writes --------------------------------------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        if template_trial is not None or not self._fast:
            trial_id = self._inner.create_new_trial(study_id, template_trial)
            with self._lock:
                if template_trial is None:  # study.ask(): a RUNNING trial this process fills in
                    for k, v in self.creation_attrs.items():
                        self._inner.set_trial_system_attr(trial_id, k, v)
                    self._hold(trial_id, study_id=study_id)
                elif study_id in self._caches:
                    # A queued trial (enqueue_trial): the next read must see it, even within
                    # MIN_INTERVAL of the last, or the next ask() creates a new trial instead.
                    self._caches[study_id].read_at = -1e9
            return trial_id
        # Optuna's read cache learns of the trial on its next read of the study
        template = None
        if self.creation_attrs:  # a RUNNING trial created with its system attrs in one transaction
            template = FrozenTrial(
                number=0, state=TrialState.RUNNING, value=None, values=None,
                datetime_start=datetime.datetime.now(), datetime_complete=None, params={},
                distributions={}, user_attrs={}, system_attrs=copy.deepcopy(self.creation_attrs),
                intermediate_values={}, trial_id=0)
        frozen = self._rdb._create_new_trial(study_id, template)
        with self._lock:
            self._hold(frozen._trial_id, frozen, study_id)
        return frozen._trial_id

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        with self._lock:
            h = self._held.get(trial_id)
            if h is None:
                return self._inner.set_trial_param(trial_id, param_name, param_value_internal,
                                                   distribution)
            self._check_distribution(h, param_name, distribution)
            h.params[param_name] = (param_value_internal, distribution)
            h.trial.params[param_name] = distribution.to_external_repr(param_value_internal)
            h.trial.distributions[param_name] = distribution
        return None

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            h = self._held.get(trial_id)
            if h is None:
                return self._inner.set_trial_user_attr(trial_id, key, value)
            _check_json(key, value)
            h.attrs[key] = value
            h.trial.user_attrs[key] = copy.deepcopy(value)
        return None

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        with self._lock:
            h = self._held.get(trial_id)
            if h is None:
                ok = self._inner.set_trial_state_values(trial_id, state, values)
                if ok and state == TrialState.RUNNING:  # a queued trial popped by study.ask()
                    self._hold(trial_id)
                    for k, v in self.creation_attrs.items():  # as a trial created here would have
                        self.set_trial_system_attr(trial_id, k, v)
                return ok
            ok = self._write(h, state, values)
            if ok and state.is_finished():
                del self._held[trial_id]
                t = h.trial
                t.state = state
                t.values = list(values) if values is not None else None
                t.datetime_complete = datetime.datetime.now()
                self._finished[trial_id] = t  # immutable from now on: reads are served here
                while len(self._finished) > 256:
                    self._finished.pop(next(iter(self._finished)))
                cache = self._caches.get(h.study_id) if h.study_id is not None else None
                if cache is not None:
                    cache.put(copy.deepcopy(t))
            elif state.is_finished():
                del self._held[trial_id]
            else:
                h.params.clear()
                h.attrs.clear()
                h.sys_attrs.clear()
            return ok

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            h = self._held.get(trial_id)
            if h is None or not self._fast:
                self._inner.set_trial_system_attr(trial_id, key, value)
            else:
                _check_json(key, value)
                h.sys_attrs[key] = value
            if h is not None:
                h.trial.system_attrs[key] = copy.deepcopy(value)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self.flush(trial_id)
        self._inner.set_trial_intermediate_value(trial_id, step, intermediate_value)
        with self._lock:
            h = self._held.get(trial_id)
            if h is not None:
                h.trial.intermediate_values[step] = intermediate_value

    # -- reads ---------------------------------------------------------------------------
    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            h = self._held.get(trial_id)
            if h is not None:
                return copy.deepcopy(h.trial)
            t = self._finished.get(trial_id)
            if t is not None:
                return copy.deepcopy(t)
            if self._fast:
                for cache in self._caches.values():
                    t = cache.by_id.get(trial_id)
                    if t is not None and t.state.is_finished():
                        return copy.deepcopy(t)
        return self._inner.get_trial(trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        waiting_only = isinstance(states, (tuple, list, set, frozenset)) and set(states) == {TrialState.WAITING}
        if self._fast and waiting_only and not self._any_waiting(study_id):
            return []  # study.ask() looks for queued trials before every trial: one cheap query
        if not self._fast:
            return self._merge_held(study_id, self._inner.get_all_trials(
                study_id, deepcopy=deepcopy, states=states), deepcopy, states)
        with self._lock:
            cache = self._caches.get(study_id)
            if cache is None:
                cache = self._caches[study_id] = _StudyCache(self._rdb, study_id)
            if waiting_only:  # a queued trial exists (another process may have queued it): read it
                cache.read_at = -1e9
            trials = self._merge_held(study_id, list(cache.refresh()), False, None)
            if not _numbered_from_zero(trials) and cache.reused:
                # A read reused within MIN_INTERVAL misses other processes' newest trials
                # while this process's own are already in: read again before answering.
                cache.read_at = -1e9
                trials = self._merge_held(study_id, list(cache.refresh()), False, None)
            if not _numbered_from_zero(trials):
                # Still a gap after a real read: a trial another process created is not
                # committed yet (PostgreSQL shows commits, not ids, in order). Optuna's
                # samplers index the list by trial number, so answer the gap-free prefix;
                # the rest is seen on a later read.
                trials = trials[:next(i for i, t in enumerate(trials) if t.number != i)]
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def _merge_held(self, study_id: int, trials: list[FrozenTrial], deepcopy: bool,
                    states: Container[TrialState] | None) -> list[FrozenTrial]:
        """``trials`` with this process's held trials in their buffered form (and those
        created since the read), ordered by number."""
        with self._lock:
            if not self._held:
                return trials
            out = []
            seen = set()
            for t in trials:
                h = self._held.get(t._trial_id)
                if h is None:
                    out.append(t)
                else:
                    seen.add(t._trial_id)
                    out.append(copy.deepcopy(h.trial) if deepcopy else h.trial)
            extra = [h.trial for tid, h in self._held.items() if tid not in seen
                     and h.study_id == study_id and (states is None or h.trial.state in states)]
            if extra:  # created since the last read
                out.extend(copy.deepcopy(extra) if deepcopy else extra)
                out.sort(key=lambda t: t.number)
            return out

    def _any_waiting(self, study_id: int) -> bool:
        import sqlalchemy as sa
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        t = models.TrialModel.__table__
        with _create_scoped_session(self._rdb.scoped_session) as session:
            return session.execute(sa.select(t.c.trial_id).where(
                t.c.study_id == study_id, t.c.state == TrialState.WAITING).limit(1)).first() is not None

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        with self._lock:
            h = self._held.get(trial_id)
            if h is not None:
                return h.trial.distributions[param_name].to_internal_repr(h.trial.params[param_name])
        return self._inner.get_trial_param(trial_id, param_name)

    # -- passed through ------------------------------------------------------------------
    def create_new_study(self, directions: Sequence[StudyDirection],
                         study_name: str | None = None) -> int:
        return self._inner.create_new_study(directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self._inner.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._inner.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._inner.set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._inner.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._inner.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._inner.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._inner.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._inner.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._inner.get_all_studies()

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._inner.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def remove_session(self) -> None:
        self._inner.remove_session()


class _StudyCache:
    """The trials of one study, read incrementally with SQLAlchemy Core over Optuna's tables.

    A finished trial never changes, so each refresh reads only trials that are new or were
    unfinished at the last read: six short SELECTs, whatever the size of the study.
    """

    _IN = 500  # ids per IN list (SQLite's variable limit)

    def __init__(self, rdb: RDBStorage, study_id: int) -> None:
        self.rdb = rdb
        self.study_id = study_id
        self.by_id: dict[int, FrozenTrial] = {}
        self.unfinished: set[int] = set()
        self.max_id = -1
        self.ordered: list[FrozenTrial] = []
        self.read_at = -1e9
        self.reused = False  # whether the last refresh() answered from the last read

    #: Reads within this many seconds of the last one reuse it: one proposal asks for the
    #: study's trials several times within milliseconds. This process's own writes update
    #: the cache directly (:meth:`put`), so only other processes' trials can be this late.
    MIN_INTERVAL = 0.2

    def put(self, trial: FrozenTrial) -> None:
        """A trial this process just wrote (finished): no need to read it back."""
        known = trial._trial_id in self.by_id
        self.by_id[trial._trial_id] = trial  # max_id stays: older trials may be unread yet
        if trial.state.is_finished():
            self.unfinished.discard(trial._trial_id)
        if known:
            self.ordered = [trial if t._trial_id == trial._trial_id else t for t in self.ordered]
        else:
            self.ordered = sorted(self.by_id.values(), key=lambda t: t.number)

    def refresh(self) -> list[FrozenTrial]:
        import time

        now = time.monotonic()
        self.reused = now - self.read_at < self.MIN_INTERVAL
        if self.reused:
            return self.ordered
        self.read_at = now
        return self._refresh()

    def _refresh(self) -> list[FrozenTrial]:
        import sqlalchemy as sa
        from optuna.storages._rdb import models as m

        T = m.TrialModel.__table__
        cond = T.c.trial_id > self.max_id
        if self.unfinished:
            if len(self.unfinished) <= self._IN:
                cond = sa.or_(cond, T.c.trial_id.in_(sorted(self.unfinished)))
            else:
                cond = sa.or_(cond, T.c.state.in_([TrialState.RUNNING, TrialState.WAITING]))
        with self.rdb.engine.connect() as conn:
            rows = conn.execute(sa.select(T.c.trial_id, T.c.number, T.c.state, T.c.datetime_start,
                                          T.c.datetime_complete)
                                .where(T.c.study_id == self.study_id, cond)).all()
            # Ids are given out at insert but seen at commit: on PostgreSQL a trial may become
            # visible after a higher id did. A count of the study's trials catches those.
            total = conn.execute(sa.select(sa.func.count()).select_from(T)
                                 .where(T.c.study_id == self.study_id)).scalar_one()
            if total > len(self.by_id.keys() | {r.trial_id for r in rows}):
                rows += conn.execute(
                    sa.select(T.c.trial_id, T.c.number, T.c.state, T.c.datetime_start,
                              T.c.datetime_complete)
                    .where(T.c.study_id == self.study_id, T.c.trial_id <= self.max_id)).all()
            rows = [r for r in {r.trial_id: r for r in rows}.values() if r.trial_id not in self.by_id
                    or not self.by_id[r.trial_id].state.is_finished()]
            if rows:
                self._load(conn, rows)
        return self.ordered

    def _load(self, conn: Any, rows: list[Any]) -> None:
        import json

        import sqlalchemy as sa
        from optuna.distributions import json_to_distribution
        from optuna.storages._rdb import models as m

        ids = [r.trial_id for r in rows]
        T = m.TrialModel.__table__

        def where(col: Any) -> Any:
            if len(ids) <= self._IN:
                return col.in_(ids)
            return col.in_(sa.select(T.c.trial_id).where(T.c.study_id == self.study_id))

        wanted = set(ids)
        P, V = m.TrialParamModel.__table__, m.TrialValueModel.__table__
        UA, SA = m.TrialUserAttributeModel.__table__, m.TrialSystemAttributeModel.__table__
        IV = m.TrialIntermediateValueModel.__table__
        params: dict[int, list[Any]] = {}
        for r in conn.execute(sa.select(P.c.trial_id, P.c.param_id, P.c.param_name, P.c.param_value,
                                        P.c.distribution_json).where(where(P.c.trial_id))):
            if r.trial_id in wanted:
                params.setdefault(r.trial_id, []).append(r)
        values: dict[int, dict[int, float]] = {}
        for r in conn.execute(sa.select(V.c.trial_id, V.c.objective, V.c.value, V.c.value_type)
                              .where(where(V.c.trial_id))):
            if r.trial_id in wanted:
                values.setdefault(r.trial_id, {})[r.objective] = \
                    m.TrialValueModel.stored_repr_to_value(r.value, r.value_type)
        attrs: dict[tuple[Any, int], dict[str, Any]] = {}
        for table in (UA, SA):
            for r in conn.execute(sa.select(table.c.trial_id, table.c.key, table.c.value_json)
                                  .where(where(table.c.trial_id))):
                if r.trial_id in wanted:
                    attrs.setdefault((table, r.trial_id), {})[r.key] = json.loads(r.value_json)
        inter: dict[int, dict[int, float]] = {}
        for r in conn.execute(sa.select(IV.c.trial_id, IV.c.step, IV.c.intermediate_value,
                                        IV.c.intermediate_value_type).where(where(IV.c.trial_id))):
            if r.trial_id in wanted:
                inter.setdefault(r.trial_id, {})[r.step] = \
                    m.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
                        r.intermediate_value, r.intermediate_value_type)
        dist_of: dict[str, BaseDistribution] = {}
        added = False
        for r in rows:
            ps = sorted(params.get(r.trial_id, []), key=lambda p: p.param_id)
            dists = {}
            for p in ps:
                d = dist_of.get(p.distribution_json)
                if d is None:
                    d = dist_of[p.distribution_json] = json_to_distribution(p.distribution_json)
                dists[p.param_name] = d
            vals = values.get(r.trial_id)
            t = FrozenTrial(
                number=r.number, state=r.state, value=None,
                values=[vals[i] for i in sorted(vals)] if vals else None,
                datetime_start=r.datetime_start, datetime_complete=r.datetime_complete,
                params={p.param_name: dists[p.param_name].to_external_repr(p.param_value) for p in ps},
                distributions=dists,
                user_attrs=attrs.get((UA, r.trial_id), {}),
                system_attrs=attrs.get((SA, r.trial_id), {}),
                intermediate_values=inter.get(r.trial_id, {}),
                trial_id=r.trial_id,
            )
            added |= r.trial_id not in self.by_id
            self.by_id[r.trial_id] = t
            self.max_id = max(self.max_id, r.trial_id)
            if t.state.is_finished():
                self.unfinished.discard(r.trial_id)
            else:
                self.unfinished.add(r.trial_id)
        if added or rows:
            self.ordered = sorted(self.by_id.values(), key=lambda t: t.number)


def _numbered_from_zero(trials: list[FrozenTrial]) -> bool:
    """Whether ``trials`` (sorted by number, numbers unique) are numbers 0..len-1."""
    return not trials or (trials[0].number == 0 and trials[-1].number == len(trials) - 1)


def _has_private_writers(rdb: Any) -> bool:
    """The RDB pieces used to write one trial in one short transaction (Optuna 4 and 5)."""
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session  # noqa: F401
    except ImportError:  # pragma: no cover - a future Optuna
        return False
    return (isinstance(rdb, RDBStorage)
            and all(hasattr(rdb, n) for n in ("scoped_session", "check_trial_is_updatable",
                                              "_create_new_trial"))
            and all(hasattr(models, n) for n in (
                "TrialModel", "TrialParamModel", "TrialUserAttributeModel", "TrialValueModel",
                "TrialSystemAttributeModel", "TrialIntermediateValueModel"))
            and hasattr(models.TrialValueModel, "value_to_stored_repr")
            and hasattr(models.TrialValueModel, "stored_repr_to_value")
            and hasattr(models.TrialIntermediateValueModel, "stored_repr_to_intermediate_value"))
