"""The local-search sampler (search/_strategies.py): validity, no repeats, resume, parallel asks."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from hadanas.config import SearchConfig
from hadanas.exceptions import ConfigError
from hadanas.search import make_sampler, run_search
from hadanas.search._strategies import LocalSearchSampler
from hadanas.spaces import get_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _root_conftest() -> Any:
    spec = importlib.util.spec_from_file_location("_hadanas_tests_conftest_strategies",
                                                  Path(__file__).resolve().parents[1] / "conftest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_ROOT = _root_conftest()


def _table() -> str:
    _ROOT.require(_ROOT.NB201_CSV.is_file(), f"NAS-Bench-201 table not found at {_ROOT.NB201_CSV}")
    return str(_ROOT.NB201_CSV)


CHOICES = {"a": ["x", "y", "z"], "b": [1, 2, 3], "c": [None, True, 0.5], "d": ["p", "q"]}
WEIGHT = {("a", "z"): 1.0, ("b", 3): 0.5, ("c", True): 0.7, ("d", "q"): 0.2}


def _objective(trial: optuna.Trial) -> float:
    params = {k: trial.suggest_categorical(k, v) for k, v in CHOICES.items()}
    bonus = 0.3 if params["a"] == "x" and params["b"] == 1 else 0.0  # an interaction
    return sum(WEIGHT.get(kv, 0.0) for kv in params.items()) + bonus


def _config_key(t: optuna.trial.FrozenTrial) -> tuple:
    return tuple(sorted(t.params.items()))


def test_never_repeats_until_the_space_is_exhausted() -> None:
    size = int(np.prod([len(v) for v in CHOICES.values()]))  # 54
    study = optuna.create_study(direction="maximize",
                                sampler=LocalSearchSampler(seed=3, n_startup_trials=4, patience=6))
    study.optimize(_objective, n_trials=size)
    keys = [_config_key(t) for t in study.trials]
    assert len(set(keys)) == size  # every configuration exactly once
    assert study.best_value == pytest.approx(1.0 + 0.5 + 0.7 + 0.2)


def test_finds_the_optimum_of_a_small_space_quickly() -> None:
    found = []
    for seed in range(5):
        study = optuna.create_study(direction="maximize",
                                    sampler=LocalSearchSampler(seed=seed, n_startup_trials=4))
        study.optimize(_objective, n_trials=20)
        found.append(study.best_value)
    assert np.mean(found) == pytest.approx(2.4)


def test_proposes_valid_nb201_params() -> None:
    space = get_space("nb201")
    study = optuna.create_study(direction="maximize", sampler=LocalSearchSampler(seed=0, n_startup_trials=3))
    specs = set()
    for i in range(25):
        trial = study.ask()
        spec = space.suggest(trial)
        assert space.check(spec) is None
        for name, value in trial.params.items():
            assert value in trial.distributions[name].choices
        specs.add(space.to_nb201(spec))
        study.tell(trial, float(sum(e.op == "conv_3x3" for n in spec.cell for e in n.edges)) + 0.01 * i)
    assert len(specs) == 25


def test_parallel_asks_get_distinct_configurations() -> None:
    study = optuna.create_study(direction="maximize",
                                sampler=LocalSearchSampler(seed=1, n_startup_trials=3, patience=None))
    study.optimize(_objective, n_trials=5)
    running = [study.ask() for _ in range(6)]  # six trials in flight at once
    for t in running:
        for k, v in CHOICES.items():
            t.suggest_categorical(k, v)
    keys = [_config_key(t) for t in study.get_trials()]
    assert len(set(keys)) == len(keys) == 11
    for t in running:
        study.tell(t, 0.0)


def test_resume_rebuilds_the_state_from_the_store() -> None:
    """12 + 12 trials with two sampler objects = 24 trials with one: only the store carries state."""
    storage = optuna.storages.InMemoryStorage()

    def run(name: str, n: int) -> list[tuple]:
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                    load_if_exists=True,
                                    sampler=LocalSearchSampler(seed=7, n_startup_trials=4, patience=4))
        study.optimize(_objective, n_trials=n)
        return [_config_key(t) for t in study.trials]

    whole = run("whole", 24)
    run("split", 12)
    split = run("split", 12)  # a fresh sampler object
    assert split == whole
    assert len(set(whole)) == 24
    segments = [t.system_attrs.get("hadanas:segment", 0) for t in optuna.load_study(
        study_name="split", storage=storage).trials]
    assert max(segments) >= 1  # the run restarted at least once, across the split


def test_run_search_resume_on_nb201(tmp_path: Path) -> None:
    """The default single-objective search, interrupted and resumed, proposes what one
    uninterrupted run of the same sampler proposes."""
    from hadanas.search import load_study, open_storage
    from hadanas.search._nb201 import NB201Table

    table = _table()
    url = f"sqlite:///{tmp_path / 'r.db'}"

    def cfg(trials: int, resume: bool = False) -> SearchConfig:
        return SearchConfig(space="nb201", benchmark_file=table, objectives=("accuracy",), trials=trials,
                            storage=url, study="split", seed=2, resume=resume, out=str(tmp_path))

    run_search(cfg(5))
    run_search(cfg(10, resume=True))
    trials = load_study(open_storage(url), "split").trials
    assert {t.user_attrs["status"] for t in trials} == {"trained"}  # no duplicate trial
    split = [t.user_attrs["arch_str"] for t in trials]

    space, rows = get_space("nb201"), NB201Table.load(table)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(cfg(10)))
    whole = []
    for _ in range(10):
        trial = study.ask()
        whole.append(space.to_nb201(space.suggest(trial)))
        study.tell(trial, rows.rows[whole[-1]].valid_200)
    assert split == whole
    assert len(set(whole)) == 10


def test_beats_random_on_nb201() -> None:
    table_path = _table()
    from hadanas.search._nb201 import NB201Table

    space, table = get_space("nb201"), NB201Table.load(table_path)

    def best(sampler: optuna.samplers.BaseSampler, n: int = 100) -> float:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for _ in range(n):
            trial = study.ask()
            study.tell(trial, table.lookup(space, space.suggest(trial)).valid_200)
        return study.best_value

    seeds = range(4)
    ours = [best(make_sampler(SearchConfig(space="nb201", objectives=("accuracy",), trials=100, seed=s)))
            for s in seeds]
    rand = [best(optuna.samplers.RandomSampler(seed=s)) for s in seeds]
    assert np.mean(ours) > np.mean(rand) + 0.002
    assert np.mean(ours) > 0.912


def test_two_objectives_pareto_local_search() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=LocalSearchSampler(seed=0, n_startup_trials=4))

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        v = _objective(trial)
        return v, float(trial.params["b"])

    study.optimize(objective, n_trials=30)
    keys = [_config_key(t) for t in study.trials]
    assert len(set(keys)) == 30
    assert max(t.values[0] for t in study.best_trials) == pytest.approx(2.4)


def test_infeasible_trials_are_not_expanded() -> None:
    def cons(t: optuna.trial.FrozenTrial) -> list[float]:
        return [1.0 if t.params.get("a") == "z" else -1.0]

    study = optuna.create_study(direction="maximize",
                                sampler=LocalSearchSampler(seed=0, n_startup_trials=4, constraints_func=cons))
    study.optimize(_objective, n_trials=30)
    feasible = [t for t in study.trials if t.params["a"] != "z"]
    assert max(t.value for t in feasible) == pytest.approx(1.4)  # b 3, c True, d q


def test_config_sampler_names() -> None:
    assert SearchConfig().sampler == "auto"
    assert SearchConfig(sampler="local").sampler == "local"
    with pytest.raises(ConfigError, match="Did you mean 'local'"):
        SearchConfig(sampler="locl")
    single = make_sampler(SearchConfig(objectives=("accuracy",)))
    assert isinstance(single, LocalSearchSampler)
    assert isinstance(make_sampler(SearchConfig(objectives=("accuracy", "params"))),
                      optuna.samplers.NSGAIISampler)
    assert isinstance(make_sampler(SearchConfig(objectives=("accuracy", "params"), sampler="local")),
                      LocalSearchSampler)
    assert isinstance(make_sampler(SearchConfig(objectives=("accuracy",), sampler="nsga2")),
                      optuna.samplers.NSGAIISampler)
    with pytest.raises(ValueError):
        LocalSearchSampler(n_startup_trials=0)


def _conditional_objective(space: Any, fingerprints: list[str]) -> Any:
    import zlib

    def objective(trial: optuna.Trial) -> float:
        spec = space.suggest(trial)
        fingerprints.append(spec.fingerprint())
        return (zlib.crc32(spec.fingerprint().encode()) % 1000) / 1000  # a rugged landscape

    return objective


def test_conditional_space_never_repeats_an_architecture() -> None:
    # The full space is conditional: an op's knobs are asked only when the op is chosen. A
    # neighbour that changes the op must not carry the old op's knob into its key, or it
    # looks new while it makes an architecture already trained.
    space = get_space("full")
    fps: list[str] = []
    study = optuna.create_study(sampler=LocalSearchSampler(seed=1, n_startup_trials=5, resolve=space.resolve))
    study.optimize(_conditional_objective(space, fps), n_trials=150)
    assert len(set(fps)) == 150, f"{150 - len(set(fps))} repeated architectures"
    # The runner's sampler gets the space's resolver.
    sampler = make_sampler(SearchConfig(objectives=("accuracy",), sampler="local"))
    assert isinstance(sampler, LocalSearchSampler) and sampler.resolve is not None


def test_resolve_drops_unused_knobs_and_draws_missing_ones() -> None:
    space = get_space("full")
    params, fp = space.resolve({})  # every parameter missing: the first choices
    assert space.suggest(optuna.trial.FixedTrial(params)).fingerprint() == fp
    # A knob of an op that is not chosen changes neither the used parameters nor the key.
    again, fp2 = space.resolve({**params, "node1.edge0.se.reduction": 4})
    assert (again, fp2) == (params, fp) and "node1.edge0.se.reduction" not in again
    # A value outside the choices is drawn again, by the given draw.
    drawn, _ = space.resolve({**params, "width": 12345}, lambda name, choices: choices[-1])
    assert drawn["width"] == list(space.widths)[-1]
