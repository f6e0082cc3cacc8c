"""One writer process of the concurrency tests: a benchmark-mode search on a shared study.

Usage: python _writer.py TAG STORAGE STUDY TARGET SEED CSV READY_DIR GO_FILE COSTS_JSON

Imports and warms everything first, touches READY_DIR/TAG, waits for GO_FILE (so every
writer hits the store at the same moment), then runs ``run_search`` through hadanas's own
store path and prints one JSON line with what it did. Every trial it asks for is tagged
with the user attr ``reliability_writer`` = TAG, so the test can attribute trials.
COSTS_JSON holds the NB201 per-op costs the test computed once with ``_op_costs`` (16
processes building the same five networks on two cores would take minutes); the test
checks every stored cost against the real ``nb201_costs``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> int:
    tag, storage, study, target, seed, csv, ready_dir, go_file, costs = sys.argv[1:10]
    import optuna

    from hadanas.config import SearchConfig
    from hadanas.search import run_search
    from hadanas.search import _nb201

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    original_ask = optuna.Study.ask

    def tagged_ask(self: optuna.Study, *args: object, **kwargs: object) -> optuna.Trial:
        trial = original_ask(self, *args, **kwargs)
        trial.set_user_attr("reliability_writer", tag)
        return trial

    optuna.Study.ask = tagged_ask  # type: ignore[method-assign]
    _nb201.NB201Table.load(csv)
    cached = tuple(json.loads(Path(costs).read_text(encoding="utf-8")))
    _nb201._op_costs = lambda name: cached  # type: ignore[assignment]
    Path(ready_dir, tag).touch()
    deadline = time.monotonic() + 600
    while not Path(go_file).exists():
        if time.monotonic() > deadline:
            print("writer: no go signal within 600 s", file=sys.stderr)
            return 3
        time.sleep(0.02)
    t0 = time.perf_counter()
    config = SearchConfig(space="nb201", benchmark_file=csv, storage=storage, study=study,
                          trials=int(target), seed=int(seed), out="hadanas-out")
    result = run_search(config)
    print(json.dumps({"tag": tag, "stats": result.stats, "completed": result.completed,
                      "failed": result.failed, "wall_s": time.perf_counter() - t0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
