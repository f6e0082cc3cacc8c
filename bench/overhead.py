"""Orchestration overhead per trial: hadanas vs Ray Tune + OptunaSearch, side by side.

Both run the same N trivial trials — a NAS-Bench-201 cell (6 categorical choices) whose
accuracy is looked up in the table, two objectives (accuracy max, params min) — on the
same local Ray runtime, with the same concurrency, each into its own SQLite Optuna store.
hadanas sends every look-up to its Ray worker actors (``executor="ray"``), so the whole
path is measured: ask, suggest, static costs, store writes, Ray dispatch, tell. Ray Tune
runs OptunaSearch with the storage and ``reuse_actors=True``. Both use Optuna's random
sampler (the NSGA-II sampler cannot be pickled into Tune's searcher checkpoints). A warm-up round of each
runs first. Each side then runs N and 4N trials, three times each, interleaved; the per-trial
overhead is the slope of the medians, (T(4N) - T(N)) / 3N, so once-per-run costs (starting worker actors, opening the store) are
charged to neither side's trials.

    python bench/overhead.py [--trials 60] [--repeats 3] [--concurrency 2] [--table ../shared/nas/nb201.csv]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
EDGES = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]


def run_hadanas(n: int, conc: int, table: str, workdir: Path, tag: str) -> float:
    from hadanas.config import SearchConfig
    from hadanas.search import run_search

    cfg = SearchConfig(space="nb201", benchmark_file=table, trials=n, max_concurrent=conc,
                       storage=f"sqlite:///{workdir / f'hadanas-{tag}.db'}", study=tag,
                       objectives=("accuracy", "params"), sampler="random", out=str(workdir))
    t0 = time.perf_counter()
    r = run_search(cfg, executor="ray")  # its actors stop when it returns
    dt = time.perf_counter() - t0
    assert r.completed == n, r
    return dt


def run_tune(n: int, conc: int, table: str, workdir: Path, tag: str) -> float:
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from hadanas.search._nb201 import NB201Table

    rows = NB201Table.load(table).rows

    def trainable(config: dict) -> dict:
        arch = "+".join("|" + "|".join(f"{config[f'e{i}{j}']}~{j}" for (i2, j) in EDGES if i2 == i) + "|"
                        for i in (1, 2, 3))
        convs = sum(config[f"e{i}{j}"].startswith("nor_conv") for i, j in EDGES)
        return {"accuracy": rows[arch].valid_200, "params": float(convs)}

    space = {f"e{i}{j}": tune.choice(OPS) for i, j in EDGES}
    storage = optuna.storages.RDBStorage(f"sqlite:///{workdir / f'tune-{tag}.db'}")
    searcher = OptunaSearch(metric=["accuracy", "params"], mode=["max", "min"], storage=storage,
                            study_name=tag, sampler=optuna.samplers.RandomSampler(seed=0))
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=n, max_concurrent_trials=conc,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(workdir / "tune"), name=tag, verbose=0),
    )
    t0 = time.perf_counter()
    results = tuner.fit()
    dt = time.perf_counter() - t0
    assert len(results) == n, len(results)
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--table", default=str(Path(__file__).resolve().parents[2] / "shared/nas/nb201.csv"))
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    logging.getLogger("ray").setLevel(logging.ERROR)
    import optuna
    import ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    n1, n2 = args.trials, 4 * args.trials
    runs: dict[str, dict[int, list[float]]] = {"hadanas": {n1: [], n2: []}, "tune": {n1: [], n2: []}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run_hadanas(4, args.concurrency, args.table, work, "warm-h")
        run_tune(4, args.concurrency, args.table, work, "warm-t")
        # Interleaved (both sides, both sizes, each repeat), so a slow phase of the machine
        # hits both sides alike; the median of the repeats is kept.
        for r in range(args.repeats):
            for n in (n1, n2):
                runs["hadanas"][n].append(run_hadanas(n, args.concurrency, args.table, work, f"h-{n}-{r}"))
                runs["tune"][n].append(run_tune(n, args.concurrency, args.table, work, f"t-{n}-{r}"))
    ray.shutdown()
    res = {k: {n: float(statistics.median(ts)) for n, ts in v.items()} for k, v in runs.items()}
    # Per-trial overhead: the slope between N and 4N trials, so what each side pays once per
    # run (starting actors, opening the store, Tune's experiment set-up) is not charged to
    # its trials. The whole run divided by its trials is printed beside it.
    per = {k: (v[n2] - v[n1]) / (n2 - n1) for k, v in res.items()}
    whole = {k: v[n2] / n2 for k, v in res.items()}
    print(f"trials: {n1} and {n2} (median of {args.repeats} runs each), concurrency: "
          f"{args.concurrency}, store: SQLite, objectives: 2")
    for k, label in (("hadanas", "hadanas              "), ("tune", "Ray Tune+OptunaSearch")):
        spread = " ".join(f"{t:.2f}" for t in runs[k][n2])
        print(f"{label}: {res[k][n1]:6.2f} s for {n1}, {res[k][n2]:6.2f} s for {n2} ({spread}) -> "
              f"{1e3 * per[k]:6.1f} ms per added trial; whole run / {n2}: {1e3 * whole[k]:6.1f} ms")
    if per["tune"] > 0:
        print(f"ratio hadanas / Ray Tune, per added trial: {per['hadanas'] / per['tune']:.3f} (target <= 0.100)")
    else:
        print("ratio per added trial: undefined (Ray Tune's runs did not grow with their trials)")
    print(f"ratio hadanas / Ray Tune, whole run / trials: {whole['hadanas'] / whole['tune']:.3f}")


if __name__ == "__main__":
    main()
