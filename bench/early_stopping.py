"""Multi-fidelity: the same NAS-Bench-201 search with and without ASHA early stopping.

Benchmark mode (table look-ups): the 12-epoch column is the cheap fidelity, the 200-epoch
column the full one. For each seed, a search of N trials with objectives (accuracy max,
params min) runs twice; the script prints the full-fidelity-equivalent cost (sum of
epochs / 200) and the hypervolume of the final front, mean +- std over seeds.

Hypervolume is computed on (1 - accuracy, params / 1e6) with the reference point
(1.0, 1.6) — worse than every cell of the table (max params 1.53 M). A stopped trial keeps
its 12-epoch accuracy, which is what the search itself sees.

    python bench/early_stopping.py [--trials 100] [--seeds 5] [--table ../shared/nas/nb201.csv]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

REFERENCE = (1.0, 1.6)


def run(table: str, trials: int, seed: int, early: bool, workdir: Path) -> tuple[float, float, int]:
    from hadanas.config import SearchConfig
    from hadanas.search import front_trials, hypervolume, load_study, open_storage, run_search

    url = f"sqlite:///{workdir / f's{seed}-{int(early)}.db'}"
    cfg = SearchConfig(space="nb201", benchmark_file=table, trials=trials, seed=seed,
                       objectives=("accuracy", "params"), storage=url, study="b",
                       early_stopping=early, eta=3, out=str(workdir))
    run_search(cfg)
    study = load_study(open_storage(url), "b")
    trials_ = study.get_trials(deepcopy=False)
    cost = sum((t.user_attrs.get("epochs") or 0) for t in trials_
               if t.user_attrs.get("status") in ("trained", "stopped_early")) / 200.0
    front = front_trials(study)
    pts = np.array([[1.0 - t.values[0], t.values[1] / 1e6] for t in front])
    stopped = sum(t.user_attrs.get("status") == "stopped_early" for t in trials_)
    return cost, hypervolume(pts, REFERENCE), stopped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--table", default=str(Path(__file__).resolve().parents[2] / "shared/nas/nb201.csv"))
    args = ap.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("hadanas").setLevel(logging.WARNING)
    rows = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for early in (False, True):
                rows[early].append(run(args.table, args.trials, seed, early, Path(tmp)))
    print(f"NAS-Bench-201 benchmark mode, {args.trials} trials, {args.seeds} seeds, NSGA-II, "
          f"objectives accuracy/params, HV reference (1-acc, Mparams) = {REFERENCE}")
    for early in (False, True):
        a = np.array(rows[early])
        print(f"{'ASHA eta=3' if early else 'no early stopping':18s}: cost {a[:, 0].mean():6.1f} "
              f"+- {a[:, 0].std():4.1f} full-fidelity trainings, hypervolume {a[:, 1].mean():.4f} "
              f"+- {a[:, 1].std():.4f}, stopped early {a[:, 2].mean():.1f}")
    c0, c1 = np.mean([r[0] for r in rows[False]]), np.mean([r[0] for r in rows[True]])
    h0, h1 = np.mean([r[1] for r in rows[False]]), np.mean([r[1] for r in rows[True]])
    print(f"ratio ASHA / none: cost {c1 / c0:.3f}, hypervolume {h1 / h0:.3f}")


if __name__ == "__main__":
    main()
