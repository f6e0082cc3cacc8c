"""Time to propose the next trial in a large study, SQLite and PostgreSQL side by side.

A study of the ``full`` space (accuracy max, FLOPs min, as the default search) is filled to
1k and then 10k completed trials through the same path a search writes (BatchedStorage),
with Optuna's random sampler. Then the search's own proposer is timed: the default NSGA-II
sampler (``make_sampler``) on a fresh process-like open of the store, ``study.ask()`` plus
``space.suggest(trial)`` — what the runner does before each trial.

* cold: the first proposal after opening the store (the sampler reads the whole study once);
* warm: the median of the next 20 proposals (each is told a result, as in a search).

    python bench/store_scale.py [--sizes 1000 10000] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Pass ``--postgres ''`` to skip PostgreSQL. Target: warm proposal <= 50 ms at 10k trials.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import optuna

from hadanas.config import SearchConfig
from hadanas.search._batched import BatchedStorage
from hadanas.search._runner import make_sampler
from hadanas.search._store import open_storage
from hadanas.spaces import get_space

DIRECTIONS = ["maximize", "minimize"]


def fill(url: str, study_name: str, upto: int, rng: random.Random) -> float:
    """Add completed trials until the study has ``upto``; return seconds spent."""
    space = get_space("full")
    storage = BatchedStorage(open_storage(url))
    study = optuna.create_study(storage=storage, study_name=study_name, directions=DIRECTIONS,
                                sampler=optuna.samplers.RandomSampler(seed=rng.randrange(2**31)),
                                load_if_exists=True)
    have = len(study.get_trials(deepcopy=False))
    t0 = time.perf_counter()
    for _ in range(upto - have):
        trial = study.ask()
        spec = space.suggest(trial)
        trial.set_user_attr("fingerprint", spec.fingerprint())
        trial.set_user_attr("status", "trained")
        acc = rng.uniform(0.5, 0.99)
        trial.set_user_attr("val_accuracy", acc)
        study.tell(trial, [acc, rng.uniform(1e5, 5e6)])
    return time.perf_counter() - t0


def propose(url: str, study_name: str, n_warm: int = 20) -> tuple[float, float]:
    """(cold, warm median) milliseconds for ask + suggest with the default sampler."""
    space = get_space("full")
    config = SearchConfig(trials=10**6, seed=0)
    storage = BatchedStorage(open_storage(url))
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=make_sampler(config))
    times = []
    for i in range(n_warm + 1):
        t0 = time.perf_counter()
        trial = study.ask()
        space.suggest(trial)
        times.append(time.perf_counter() - t0)
        study.tell(trial, [random.uniform(0.5, 0.99), random.uniform(1e5, 5e6)])
    return 1e3 * times[0], 1e3 * statistics.median(times[1:])


def fresh_postgres(base: str) -> tuple[str, str] | None:
    import sqlalchemy as sa

    name = f"hadanas_bench_{uuid.uuid4().hex[:8]}"
    try:
        eng = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        eng.dispose()
    except Exception as exc:  # no server: say so, measure SQLite only
        print(f"PostgreSQL not measured: {str(exc).splitlines()[0]}")
        return None
    return base.rsplit("/", 1)[0] + "/" + name, name


def drop_postgres(base: str, name: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("SQLite", f"sqlite:///{Path(tmp) / 'scale.db'}", None)]
        pg = fresh_postgres(args.postgres) if args.postgres else None
        if pg is not None:
            backends.append(("PostgreSQL", pg[0], pg[1]))
        try:
            for label, url, _ in backends:
                for n in sorted(args.sizes):
                    spent = fill(url, "scale", n, rng)
                    cold, warm = propose(url, "scale")
                    rows.append((label, n, cold, warm, spent))
                    print(f"{label:10s} {n:6d} trials: cold {cold:8.1f} ms, warm {warm:6.1f} ms per proposal"
                          f" (filled in {spent:.0f} s)", flush=True)
        finally:
            if pg is not None:
                drop_postgres(args.postgres, pg[1])
    print()
    print("store       trials  first proposal (ms)  next proposals, median (ms)")
    for label, n, cold, warm, _ in rows:
        print(f"{label:10s} {n:7d}  {cold:19.1f}  {warm:27.1f}")
    top = max(args.sizes)
    worst = max((w for lb, n, _, w, _ in rows if n == top), default=float("nan"))
    print(f"target: next proposal <= 50 ms at {top} trials: worst {worst:.1f} ms "
          f"({'met' if worst <= 50 else 'NOT met'})")


if __name__ == "__main__":
    main()
