"""Two objectives on the NAS-Bench-201 table: hypervolume after 100 look-ups.

Objectives: 200-epoch CIFAR-10 validation accuracy (maximise) and params (minimise; the
params of the NB201 network as hadanas builds it, which is what benchmark mode records).
Hypervolume is computed on (1 - accuracy, params / 1e6) with the reference point
(1.0, 1.6), worse than every cell of the table (max params 1.53 M), over the distinct
cells each strategy looked up. The table's own front (every cell looked up) gives the
largest hypervolume reachable; the script prints it for scale.

What each arm runs through:

- ``NSGA-II (default)``: hadanas's default with two objectives (``sampler`` left at
  ``auto``), through ``run_search(SearchConfig(space="nb201", benchmark_file=...,
  objectives=("accuracy", "params"), trials=N, storage=<SQLite file in a temporary
  folder>, seed=s))``. NSGA-II proposes cells it has already evaluated; run_search answers
  those from the store without a look-up but counts them as trials, so N trials hold
  fewer than N look-ups (the ``look-ups`` column).
- ``NSGA-II, in-memory``: the same sampler (``make_sampler``) on an in-memory study, asked
  until it has looked up N distinct cells (repeats are free): NSGA-II with the full
  budget of look-ups.
- ``local (Pareto)``: ``run_search`` as the first arm with ``sampler="local"``, whose
  several-objective mode is a Pareto local search (it never proposes a seen cell, so N
  trials are N look-ups).
- ``random``: Optuna's ``RandomSampler`` on an in-memory study until N distinct cells.

    python bench/nb201_hv.py [--seeds 20] [--budget 100] [--table ../shared/nas/nb201.csv]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

REFERENCE = (1.0, 1.6)


def _hv(points: list[tuple[float, float]]) -> float:
    from hadanas.search import hypervolume, pareto_mask

    p = np.array([[1.0 - a, params / 1e6] for a, params in points])
    return hypervolume(p[pareto_mask(p)], REFERENCE)


def via_run_search(table: str, budget: int, seed: int, sampler: str, workdir: Path) -> tuple[float, int]:
    """Hypervolume of ``budget`` trials through run_search, and how many were look-ups."""
    from optuna.trial import TrialState

    from hadanas.config import SearchConfig
    from hadanas.search import load_study, open_storage, run_search

    url = f"sqlite:///{workdir / f'{sampler}-{seed}.db'}"
    run_search(SearchConfig(space="nb201", benchmark_file=table, objectives=("accuracy", "params"),
                            trials=budget, storage=url, study="b", seed=seed, sampler=sampler,
                            out=str(workdir)))
    done = load_study(open_storage(url), "b").get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    looked_up = [t for t in done if t.user_attrs.get("status") == "trained"]
    assert len({t.user_attrs["arch_str"] for t in looked_up}) == len(looked_up)
    return _hv([(t.values[0], t.values[1]) for t in looked_up]), len(looked_up)


def in_memory(table_path: str, budget: int, sampler: object) -> tuple[float, int]:
    """An in-memory study until ``budget`` distinct cells were looked up (repeats are free)."""
    import optuna

    from hadanas.search._nb201 import NB201Table, nb201_costs
    from hadanas.spaces import get_space

    space, table = get_space("nb201"), NB201Table.load(table_path)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    cache: dict[str, tuple[float, float]] = {}
    asks = 0
    while len(cache) < budget and asks < 20 * budget:
        asks += 1
        trial = study.ask()
        spec = space.suggest(trial)
        key = space.to_nb201(spec)
        if key not in cache:
            cache[key] = (table.rows[key].valid_200, float(nb201_costs(space, spec)[0]))
        study.tell(trial, cache[key])
    return _hv(list(cache.values())), len(cache)


def table_front_hv(table_path: str) -> float:
    from hadanas.search._nb201 import NB201Table, nb201_costs
    from hadanas.spaces import get_space

    space, table = get_space("nb201"), NB201Table.load(table_path)
    return _hv([(r.valid_200, float(nb201_costs(space, space.from_nb201(k))[0]))
                for k, r in table.rows.items()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--table", default=str(Path(__file__).resolve().parents[2] / "shared/nas/nb201.csv"))
    args = ap.parse_args()
    import optuna

    from hadanas.config import SearchConfig
    from hadanas.search import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("hadanas").setLevel(logging.WARNING)
    hv: dict[str, np.ndarray] = {}
    used: dict[str, float] = {}
    secs: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        def nsga2(seed: int) -> object:
            return make_sampler(SearchConfig(objectives=("accuracy", "params"), trials=args.budget,
                                             seed=seed))

        arms = {
            "NSGA-II (default)": lambda s: via_run_search(args.table, args.budget, s, "auto", Path(tmp)),
            "NSGA-II, in-memory": lambda s: in_memory(args.table, args.budget, nsga2(s)),
            "local (Pareto)": lambda s: via_run_search(args.table, args.budget, s, "local", Path(tmp)),
            "random": lambda s: in_memory(args.table, args.budget, optuna.samplers.RandomSampler(seed=s)),
        }
        for name, arm in arms.items():
            t0 = time.perf_counter()
            out = [arm(s) for s in range(args.seeds)]
            secs[name] = time.perf_counter() - t0
            hv[name] = np.array([h for h, _ in out])
            used[name] = float(np.mean([n for _, n in out]))
    best = table_front_hv(args.table)
    print(f"NAS-Bench-201 table, objectives accuracy (max) / params (min), {args.budget} look-ups, "
          f"seeds 0..{args.seeds - 1}; hypervolume of (1 - accuracy, Mparams) with reference point "
          f"{REFERENCE}; the table's whole front: {best:.4f}")
    print(f"{'strategy':20s} {'HV mean':>8s} {'std':>7s} {'gap to table front':>18s} {'look-ups':>8s} {'time':>7s}")
    for name, h in hv.items():
        print(f"{name:20s} {h.mean():8.4f} {h.std():7.4f} {best - h.mean():18.4f} {used[name]:8.1f} "
              f"{secs[name]:6.1f}s")
    print("(look-ups: distinct cells evaluated, mean over seeds; time: all seeds)")
    for a, b in (("NSGA-II (default)", "random"), ("NSGA-II, in-memory", "random"),
                 ("local (Pareto)", "NSGA-II (default)"), ("local (Pareto)", "NSGA-II, in-memory"),
                 ("local (Pareto)", "random")):
        d = hv[a] - hv[b]
        print(f"{a} - {b}: {d.mean():+.4f} (paired std {d.std():.4f}; better on {int((d > 0).sum())} of "
              f"{len(d)} seeds); HV ratio {hv[a].mean() / hv[b].mean():.4f}; gap ratio "
              f"{(best - hv[a].mean()) / (best - hv[b].mean()):.2f}")


if __name__ == "__main__":
    main()
