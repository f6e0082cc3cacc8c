"""Single-objective strategies on the NAS-Bench-201 table: best accuracy within 100 look-ups.

For each seed, every strategy gets the same budget of table look-ups (distinct cells
evaluated; a strategy that proposes a cell it has already evaluated gets the stored
answer again, which costs no look-up) and the script records the best 200-epoch CIFAR-10
validation accuracy it found. It prints mean +- std over seeds, how often each strategy
found the table's optimum, and hadanas's difference and regret ratio against each other
strategy (regret = optimum - best found; the optimum is read from the table for the
report only, no strategy sees it).

What each arm runs through:

- ``hadanas``: hadanas's default single-objective strategy (``sampler`` left at ``auto``,
  which is the local-search sampler of ``search/_strategies.py`` with one objective),
  through the real path: ``run_search(SearchConfig(space="nb201", benchmark_file=...,
  objectives=("accuracy",), trials=N, storage=<SQLite file in a temporary folder, on
  /dev/shm when it exists>,
  seed=s))``. Its look-ups are the trials with status ``trained``; the script checks
  that the study has no duplicate trials, so N trials are N look-ups.
- ``hadanas in-memory``: the same sampler (``make_sampler`` of that config) on an
  in-memory Optuna study with the table look-up; a check that the run path does not
  change what the strategy finds (the per-seed results should be identical).
- ``random``: Optuna's ``RandomSampler`` on an in-memory study, ``space.suggest(trial)``
  and the table look-up.
- ``regularised evolution``: a small aging evolution written here (population 20,
  tournament 5, one-choice mutation of the tournament winner, the oldest member dies),
  in plain Python over the same categorical parameters.
- ``Optuna TPE``: hadanas's TPE configuration (``make_sampler`` with ``sampler="tpe"``:
  multivariate TPE, 10 start-up trials) on an in-memory study with the table look-up,
  until it has looked up ``budget`` distinct cells (TPE often proposes a cell again; those
  trials are free here, so it gets more trials than the budget).
- ``Optuna TPE, 100 trials``: the same, stopped after ``budget`` trials, repeats included
  (the convention where every trial costs a look-up). Only the first TPE row enters the
  comparisons below the table.

    python bench/nb201_strategies.py [--seeds 30] [--budget 100] [--table ../shared/nas/nb201.csv]
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Arm = Callable[[int], tuple[float, int]]  # seed -> (best accuracy %, repeated proposals)


def _space_and_table(path: str) -> tuple[Any, Any]:
    from hadanas.search._nb201 import NB201Table
    from hadanas.spaces import get_space

    return get_space("nb201"), NB201Table.load(path)


def hadanas_run_search(table_path: str, budget: int, workdir: Path) -> Arm:
    def arm(seed: int) -> tuple[float, int]:
        from optuna.trial import TrialState

        from hadanas.config import SearchConfig
        from hadanas.search import load_study, open_storage, run_search

        url = f"sqlite:///{workdir / f'local-{seed}.db'}"
        cfg = SearchConfig(space="nb201", benchmark_file=table_path, objectives=("accuracy",),
                           trials=budget, storage=url, study="b", seed=seed, out=str(workdir))
        run_search(cfg)
        trials = load_study(open_storage(url), "b").get_trials(deepcopy=False,
                                                               states=(TrialState.COMPLETE,))
        looked_up = [t for t in trials if t.user_attrs.get("status") == "trained"]
        repeats = len(trials) - len(looked_up)
        assert len({t.user_attrs["arch_str"] for t in looked_up}) == len(looked_up)
        return 100.0 * max(t.values[0] for t in looked_up), repeats

    return arm


def optuna_arm(table_path: str, budget: int, make: Callable[[int], Any], per_trial: bool = False) -> Arm:
    """An in-memory Optuna study: ask, ``space.suggest``, look the cell up, tell.

    ``per_trial``: stop after ``budget`` trials, repeats included (a repeat then costs a
    look-up, as when every trial is trained); otherwise after ``budget`` distinct cells.
    """
    import optuna

    space, table = _space_and_table(table_path)

    def arm(seed: int) -> tuple[float, int]:
        study = optuna.create_study(direction="maximize", sampler=make(seed))
        cache: dict[str, float] = {}
        asks = 0
        while (asks if per_trial else len(cache)) < budget and asks < 20 * budget:
            asks += 1
            trial = study.ask()
            key = space.to_nb201(space.suggest(trial))
            if key not in cache:
                cache[key] = table.rows[key].valid_200
            study.tell(trial, cache[key])
        return 100.0 * max(cache.values()), asks - len(cache)

    return arm


def evolution_arm(table_path: str, budget: int, population: int = 20, tournament: int = 5) -> Arm:
    """Aging (regularised) evolution over the nb201 space's categorical parameters."""
    from hadanas.spaces import RandomChooser

    space, table = _space_and_table(table_path)

    class Fixed:
        """A chooser that replays ``params`` (and records what it was asked)."""

        def __init__(self, params: dict[str, Any]) -> None:
            self.params = params
            self.choices: dict[str, list[Any]] = {}

        def suggest_categorical(self, name: str, choices: Any) -> Any:
            self.choices[name] = list(choices)
            return self.params[name]

    def arm(seed: int) -> tuple[float, int]:
        rng = random.Random(seed)
        cache: dict[str, float] = {}
        repeats = 0
        pop: list[tuple[dict[str, Any], float]] = []
        choices: dict[str, list[Any]] = {}

        def evaluate(params: dict[str, Any]) -> float:
            nonlocal repeats
            chooser = Fixed(params)
            key = space.to_nb201(space.suggest(chooser))
            choices.update(chooser.choices)
            if key in cache:
                repeats += 1
            else:
                cache[key] = table.rows[key].valid_200
            return cache[key]

        while len(cache) < budget and repeats < 20 * budget:
            if len(pop) < population:
                rc = RandomChooser(rng.randrange(2**31))
                space.suggest(rc)
                params = rc.params
            else:
                parent = max(rng.sample(pop, tournament), key=lambda p: p[1])[0]
                name = rng.choice([n for n, c in choices.items() if len(c) > 1])
                params = {**parent, name: rng.choice([c for c in choices[name] if c != parent[name]])}
            pop.append((params, evaluate(params)))
            if len(pop) > population:
                pop.pop(0)
        return 100.0 * max(cache.values()), repeats

    return arm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--table", default=str(Path(__file__).resolve().parents[2] / "shared/nas/nb201.csv"))
    args = ap.parse_args()
    import optuna

    from hadanas.config import SearchConfig
    from hadanas.search import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("hadanas").setLevel(logging.WARNING)
    _, table = _space_and_table(args.table)
    optimum = 100.0 * max(r.valid_200 for r in table.rows.values())

    def config(seed: int, sampler: str = "auto") -> SearchConfig:
        return SearchConfig(space="nb201", benchmark_file=args.table, objectives=("accuracy",),
                            trials=args.budget, seed=seed, sampler=sampler)

    shm = Path("/dev/shm")  # the SQLite files on tmpfs when there is one: no fsync per write
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        arms: dict[str, Arm] = {
            "hadanas (run_search)": hadanas_run_search(args.table, args.budget, Path(tmp)),
            "hadanas in-memory": optuna_arm(args.table, args.budget, lambda s: make_sampler(config(s))),
            "random": optuna_arm(args.table, args.budget,
                                 lambda s: optuna.samplers.RandomSampler(seed=s)),
            "regularised evolution": evolution_arm(args.table, args.budget),
            "Optuna TPE": optuna_arm(args.table, args.budget, lambda s: make_sampler(config(s, "tpe"))),
            "Optuna TPE, 100 trials": optuna_arm(args.table, args.budget,
                                                 lambda s: make_sampler(config(s, "tpe")), per_trial=True),
        }
        best: dict[str, np.ndarray] = {}
        repeats: dict[str, int] = {}
        secs: dict[str, float] = {}
        for name, arm in arms.items():
            t0 = time.perf_counter()
            out = [arm(s) for s in range(args.seeds)]
            secs[name] = time.perf_counter() - t0
            best[name] = np.array([b for b, _ in out])
            repeats[name] = sum(r for _, r in out)

    print(f"NAS-Bench-201 table ({len(table.rows)} cells, optimum {optimum:.2f}), best 200-epoch "
          f"CIFAR-10 validation accuracy (%) within {args.budget} look-ups, seeds 0..{args.seeds - 1}")
    print(f"{'strategy':24s} {'mean':>7s} {'std':>6s} {'min':>6s} {'optimum found':>13s} "
          f"{'repeats':>7s} {'time':>7s}")
    for name, b in best.items():
        print(f"{name:24s} {b.mean():7.3f} {b.std():6.3f} {b.min():6.2f} "
              f"{np.mean(b >= optimum - 1e-9):12.0%} {repeats[name]:7d} {secs[name]:6.1f}s")
    print("(repeats: proposals of an already evaluated cell, summed over seeds; time: all seeds)")
    ours = best["hadanas (run_search)"]
    same = np.array_equal(ours, best["hadanas in-memory"])
    print(f"hadanas through run_search and in memory give the same best per seed: {'yes' if same else 'NO'}")
    regret = optimum - ours.mean()
    for name in ("random", "regularised evolution", "Optuna TPE"):
        d = ours - best[name]
        other = optimum - best[name].mean()
        print(f"hadanas - {name:22s}: {d.mean():+.3f} (paired std {d.std():.3f}; better on "
              f"{int((d > 1e-9).sum())}, equal on {int((abs(d) <= 1e-9).sum())}, worse on "
              f"{int((d < -1e-9).sum())} seeds); regret ratio hadanas/{name} "
              f"{regret / other if other > 0 else float('nan'):.2f}")


if __name__ == "__main__":
    main()
