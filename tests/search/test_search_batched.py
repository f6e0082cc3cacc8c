"""BatchedStorage stores exactly what Optuna's own RDB storage stores, in fewer commits."""

from __future__ import annotations

import math
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hadanas.search._batched import BatchedStorage, _StudyCache
from hadanas.search._store import open_storage


def _script(study: optuna.Study) -> None:
    """The same history through any storage: params, attrs, queued trials, failures, inf."""
    for i in range(6):
        t = study.ask()
        op = t.suggest_categorical("op", ["conv", "se", "star"])
        w = t.suggest_int("width", 8, 64, step=8)
        lr = t.suggest_float("lr", 1e-4, 1e-1, log=True)
        t.set_user_attr("spec", {"op": op, "width": w, "nested": [1, {"a": None}]})
        t.set_user_attr("attempt", 0)
        t.set_user_attr("attempt", i)  # written twice: the last value wins
        t.storage.set_trial_system_attr(t._trial_id, "note", f"s{i}")
        t.storage.set_trial_intermediate_value(t._trial_id, 1, 0.5 + i / 100)
        if i == 2:
            study.tell(t, state=TrialState.FAIL)
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        elif i == 4:
            study.tell(t, [math.inf, -math.inf])
        else:
            study.tell(t, [0.9 - lr, float(w)])
    t = study.ask()  # the queued one
    study.tell(t, [0.5, 1.0])
    study.ask()  # left RUNNING


def _view(trials: list[optuna.trial.FrozenTrial]) -> list[tuple]:
    return [(t.number, t.state, t.values, t.params, t.distributions, t.user_attrs,
             {k: v for k, v in t.system_attrs.items()}, t.intermediate_values) for t in trials]


@pytest.mark.parametrize("fast", [True, False], ids=["one-transaction", "fallback"])
def test_same_records_as_optuna(tmp_path: Path, fast: bool) -> None:
    plain_url = f"sqlite:///{tmp_path / 'plain.db'}"
    batched_url = f"sqlite:///{tmp_path / 'batched.db'}"
    dirs = ["maximize", "minimize"]
    plain = optuna.create_study(storage=open_storage(plain_url), study_name="s", directions=dirs,
                                sampler=optuna.samplers.RandomSampler(seed=3))
    store = BatchedStorage(open_storage(batched_url))
    store._fast = fast and store._fast
    if not fast:
        store._inner = optuna.storages.get_storage(store._rdb)
    batched = optuna.create_study(storage=store, study_name="s", directions=dirs,
                                  sampler=optuna.samplers.RandomSampler(seed=3))
    _script(plain)
    _script(batched)
    # what this process sees, and what any other reader of the file sees
    fresh = optuna.load_study(study_name="s", storage=open_storage(batched_url))
    assert _view(batched.trials) == _view(plain.trials)
    assert _view(fresh.trials) == _view(plain.trials)
    if fast:  # two commits per finished trial at most, plus one per intermediate report
        assert store.commits <= 2 * len(plain.trials)


def test_a_running_trial_is_stored_at_flush(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    store = BatchedStorage(open_storage(url))
    study = optuna.create_study(storage=store, study_name="f")
    t = study.ask()
    t.suggest_categorical("op", ["a", "b"])
    t.set_user_attr("spec", {"x": 1})
    other = optuna.load_study(study_name="f", storage=open_storage(url))
    assert other.trials[0].params == {} and other.trials[0].state == TrialState.RUNNING
    store.flush(t._trial_id)
    other = optuna.load_study(study_name="f", storage=open_storage(url))
    assert other.trials[0].params == t.params and other.trials[0].user_attrs == {"spec": {"x": 1}}


def test_other_writers_trials_are_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    mine = optuna.create_study(storage=BatchedStorage(open_storage(url)), study_name="o")
    theirs = optuna.load_study(study_name="o", storage=open_storage(url))
    mine.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    running = theirs.ask()
    running.suggest_float("x", 0, 1)
    monkeypatch.setattr(_StudyCache, "MIN_INTERVAL", 0.0)
    assert [t.state for t in mine.trials] == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING]
    theirs.tell(running, 0.25)
    assert mine.trials[2].state == TrialState.COMPLETE and mine.trials[2].value == 0.25
    assert mine.best_trial.number in (0, 1, 2)


def test_reads_within_the_interval_reuse_the_last(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    mine = optuna.create_study(storage=BatchedStorage(open_storage(url)), study_name="r")
    theirs = optuna.load_study(study_name="r", storage=open_storage(url))
    assert mine.trials == []
    theirs.optimize(lambda t: 1.0, n_trials=1)
    mine.optimize(lambda t: 2.0, n_trials=1)  # its own trial is seen at once
    assert [t.value for t in mine.trials if t.value == 2.0] == [2.0]
    time.sleep(_StudyCache.MIN_INTERVAL + 0.05)
    assert sorted(t.value for t in mine.trials) == [1.0, 2.0]


def test_a_trial_queued_just_before_ask_is_the_one_asked(tmp_path: Path) -> None:
    # The runner queues the retry of a trial whose worker died and asks at once, well within
    # the interval in which a read of the study is reused.
    storage = BatchedStorage(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'q.db'}"))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    t = study.ask()
    t.suggest_categorical("a", list(range(8)))
    study.tell(t, state=TrialState.FAIL)
    assert len(study.trials) == 1  # a read the next ask would reuse
    study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
    retry = study.ask()
    assert retry.number == 1 and retry.user_attrs.get("retry_of") == 0
    assert retry.suggest_categorical("a", list(range(8))) == t.params["a"]
    study.tell(retry, 1.0)
    stored = optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{tmp_path / 'q.db'}").trials
    assert [x.state for x in stored] == [TrialState.FAIL, TrialState.COMPLETE]


@pytest.mark.parametrize("fast", [True, False], ids=["one-transaction", "fallback"])
def test_bad_writes_fail_at_once_and_the_trial_can_still_be_failed(tmp_path: Path, fast: bool) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    store = BatchedStorage(open_storage(url))
    store._fast = fast and store._fast
    if not fast:
        store._inner = optuna.storages.get_storage(store._rdb)
    study = optuna.create_study(storage=store)
    t = study.ask()
    t.suggest_categorical("a", [1, 2])
    study.tell(t, 1.0)
    t = study.ask()
    with pytest.raises(ValueError):  # another distribution under a stored name, as Optuna says
        t.suggest_categorical("a", [1, 2, 3])
    with pytest.raises(TypeError):  # not JSON
        t.set_user_attr("val_accuracy", object())
    t.set_user_attr("fail_reason", "bad parameters")
    study.tell(t, state=TrialState.FAIL)
    stored = optuna.load_study(study_name=study.study_name, storage=url).trials
    assert [x.state for x in stored] == [TrialState.COMPLETE, TrialState.FAIL]
    assert stored[1].user_attrs == {"fail_reason": "bad parameters"} and stored[1].params == {}


def test_creation_attrs_reach_new_and_queued_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    storage = BatchedStorage(optuna.storages.RDBStorage(url))
    storage.creation_attrs = {"hadanas:driver": {"pid": 1}}
    study = optuna.create_study(storage=storage)
    study.tell(study.ask(), 1.0)
    study.enqueue_trial({}, user_attrs={"retry_of": 0})
    study.tell(study.ask(), 2.0)
    stored = optuna.load_study(study_name=study.study_name, storage=url).trials
    assert [t.system_attrs.get("hadanas:driver") for t in stored] == [{"pid": 1}, {"pid": 1}]
    assert stored[1].user_attrs == {"retry_of": 0}
