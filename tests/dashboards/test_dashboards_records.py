"""The fast store reader gives what Optuna's own API gives, incrementally, without writing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest

from hadanas.dashboards import StoreReader, records_from_study
from hadanas.dashboards._records import LIGHT_KEYS
from hadanas.exceptions import StoreError
from hadanas.search import open_storage


def _same(fast: Any, api: Any, specs: bool) -> None:
    assert (fast.name, fast.directions, fast.objectives, fast.attrs) == (
        api.name, api.directions, api.objectives, api.attrs)
    assert [t.number for t in fast.trials] == [t.number for t in api.trials]
    for f, a in zip(fast.trials, api.trials):
        assert (f.number, f.trial_id, f.state) == (a.number, a.trial_id, a.state)
        if a.values is None:
            assert f.values is None
        else:
            assert f.values is not None
            assert all((x == y) or (math.isnan(x) and math.isnan(y)) for x, y in zip(f.values, a.values))
        keys = set(LIGHT_KEYS) | ({"spec"} if specs else set())
        assert f.attrs == {k: v for k, v in a.attrs.items() if k in keys and v is not None}


def test_reader_matches_the_optuna_api_on_a_real_search(tiny_search: dict) -> None:
    storage = open_storage(tiny_search["storage"], create=False)
    api = records_from_study(optuna.load_study(study_name=tiny_search["study"], storage=storage))
    reader = StoreReader(storage, tiny_search["study"])
    _same(reader.read(), api, specs=False)
    fast = reader.read(specs=True)
    _same(fast, api, specs=True)
    assert all(isinstance(t.attrs.get("spec"), dict) for t in fast.trials if t.state == "COMPLETE")
    assert api.objectives == ["accuracy", "flops"] and len(api.trials) >= 6


def test_reader_is_incremental_and_sees_every_change(tmp_path: Path,
                                                     make_study: Callable[..., dict]) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    make_study(url, "s", 30, n_failed=2, n_infeasible=3, n_running=2)
    storage = open_storage(url, create=False)
    reader = StoreReader(storage, "s")
    first = reader.read(specs=True)
    api = records_from_study(optuna.load_study(study_name="s", storage=storage))
    _same(first, api, specs=True)
    assert [t.state for t in first.trials].count("RUNNING") == 2

    # a writer finishes a running trial, adds a trial with an infinite value, fails one
    study = optuna.load_study(study_name="s", storage=storage)
    running = [t for t in study.get_trials() if t.state.name == "RUNNING"]
    storage.set_trial_user_attr(running[0]._trial_id, "status", "trained")
    storage.set_trial_state_values(running[0]._trial_id, optuna.trial.TrialState.COMPLETE,
                                   [0.5, 1000.0])
    t = study.ask()
    t.set_user_attr("status", "trained")
    study.tell(t, [0.7, float("inf")])
    storage.set_trial_state_values(running[1]._trial_id, optuna.trial.TrialState.FAIL)

    second = reader.read(specs=True)
    _same(second, records_from_study(optuna.load_study(study_name="s", storage=storage)), specs=True)
    by_number = {t.number: t for t in second.trials}
    assert by_number[running[0].number].values == (0.5, 1000.0)
    assert by_number[t.number].values == (0.7, math.inf)
    assert by_number[running[1].number].state == "FAIL"
    # finished trials are not read again: the very same record objects come back
    assert all(a is b for a, b in zip(first.trials[:25], second.trials[:25]))


def test_reader_unknown_study_names_close_matches(tiny_search: dict) -> None:
    storage = open_storage(tiny_search["storage"], create=False)
    with pytest.raises(StoreError, match="no study named 'nope'"):
        StoreReader(storage, "nope")
    with pytest.raises(StoreError, match=f"Did you mean '{tiny_search['study']}'"):
        StoreReader(storage, tiny_search["study"][:-1])


def test_reader_never_writes(tmp_path: Path, make_study: Callable[..., dict]) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'h.db'}"
    make_study(url, "s", 12, n_running=1)
    storage = open_storage(url, create=False)
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.strip().split()[0].upper())

    sa.event.listen(storage.engine, "before_cursor_execute", record)
    try:
        reader = StoreReader(storage, "s")
        reader.read()
        reader.read(specs=True)
        reader.full_trial(3)
    finally:
        sa.event.remove(storage.engine, "before_cursor_execute", record)
    assert seen and set(seen) <= {"SELECT", "PRAGMA"}, sorted(set(seen))
