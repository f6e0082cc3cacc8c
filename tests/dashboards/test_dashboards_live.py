"""A dashboard polling a live SQLite study never blocks or breaks the process writing it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Callable

import optuna

from hadanas.dashboards import Dashboard
from hadanas.search import open_storage

# The writer does what a search's driver does to the store, in a loop: ask, set user attrs
# one by one, tell; with a busy timeout of only 2 s (a search waits up to 60 s), so a
# reader holding a lock for 2 s would show up here as "database is locked".
WRITER = textwrap.dedent("""
    import json, sys, time, random
    import optuna
    from optuna.storages import RDBStorage
    from hadanas.search import open_storage

    url, seconds = sys.argv[1], float(sys.argv[2])
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    open_storage(url)  # WAL mode, as a search opens it
    storage = RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 2}})
    study = optuna.create_study(storage=storage, study_name="live",
                                directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("objectives", ["accuracy", "flops"])
    print("ready", flush=True)
    sys.stdin.readline()  # "go": the dashboard is up and polling
    rng = random.Random(0)
    done, errors, slowest, t_end = 0, [], 0.0, time.time() + seconds
    while time.time() < t_end:
        t0 = time.perf_counter()
        try:
            trial = study.ask()
            width = trial.suggest_categorical("width", [8, 16, 24])
            flops = width * rng.randint(10_000, 100_000)
            for k, v in {"flops": flops, "params": flops // 40, "status": "trained", "epochs": 1,
                         "summary": f"w{width}/{2 * width} x1 | n1=conv_3x3(0)",
                         "spec": {"schema": 1, "inputs": ["image"], "input_fusion": None,
                                  "stages": [width, 2 * width], "cells_per_stage": 1,
                                  "cell": [{"combine": "sum", "edges": [{"src": 0, "op": "conv_3x3"}]}]}
                         }.items():
                trial.set_user_attr(k, v)
            study.tell(trial, [min(0.99, flops / 3e6 + rng.random() * 0.1), float(flops)])
            done += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
        slowest = max(slowest, time.perf_counter() - t0)
    print(json.dumps({"done": done, "errors": errors, "slowest_s": slowest}), flush=True)
""")


def test_polling_a_live_study_never_blocks_the_writer(tmp_path: Path, serve: Callable[..., Any],
                                                      get: Callable[..., Any]) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writer = subprocess.Popen([sys.executable, str(script), url, "8"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    responses: list[tuple[str, int]] = []
    versions: list[str] = []
    try:
        assert writer.stdout is not None
        line = writer.stdout.readline()
        assert line.strip() == "ready", line + (writer.stderr.read() if writer.stderr else "")
        app = Dashboard(open_storage(url, create=False), "live", storage_url=url, interval_s=0.2)
        stop = threading.Event()

        def poll(paths: list[str]) -> None:
            while not stop.is_set():
                for p in paths:
                    status, _, body = get(server.url + p)
                    responses.append((p, status))
                    if p == "api/version" and status == 200:
                        versions.append(json.loads(body)["version"])

        with serve(app) as server:
            pollers = [threading.Thread(target=poll, args=(ps,)) for ps in (
                ["api/version", "api/front.json"], ["api/views.json", "api/version"])]
            for t in pollers:
                t.start()
            try:
                out, err = writer.communicate("go\n", timeout=120)
            finally:
                stop.set()
                for t in pollers:
                    t.join(timeout=60)
            status, _, body = get(server.url + "api/front.json")
            final = json.loads(body)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    result = json.loads(out.strip().splitlines()[-1])
    print(f"\nwriter: {result['done']} trials in 8 s, slowest {result['slowest_s']:.2f} s, "
          f"errors {len(result['errors'])}; dashboard: {len(responses)} responses, "
          f"{len(set(versions))} versions seen")
    assert result["errors"] == [], result["errors"][:3]
    assert writer.returncode == 0, err
    assert result["done"] >= 10
    assert responses and all(s == 200 for _, s in responses), [r for r in responses if r[1] != 200][:5]
    assert len(set(versions)) >= 3  # the dashboard saw the study grow while it was written
    study = optuna.load_study(study_name="live", storage=open_storage(url, create=False))
    assert final["counts"]["complete"] == result["done"] == len(study.trials)
