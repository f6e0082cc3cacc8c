"""Fixtures of the dashboard tests: synthetic studies in hadanas's store schema, a copy of
the session's real tiny search, a server in a thread, and a headless Chromium."""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def bulk_study(url: str, name: str, n: int, *, seed: int = 0, space: str = "full",
               objectives: tuple[str, ...] = ("accuracy", "flops"), n_failed: int = 0,
               n_infeasible: int = 0, n_running: int = 0, acc_shift: float = 0.0,
               distinct_specs: int = 2000) -> dict[str, Any]:
    """Write a study of ``n`` trials straight into an SQLite store's tables (seconds, not
    the minutes Optuna's ``add_trials`` takes).

    Specs are real draws from ``space`` (``distinct_specs`` of them, reused round-robin),
    stored with the Optuna params a search records; objective values are synthetic: FLOPs
    log-uniform, accuracy rising with log FLOPs plus noise. User attrs follow
    search/_store.py. Trials 1..n_failed fail (costs known, no accuracy), the next
    ``n_infeasible`` are infeasible, the last ``n_running`` still run.
    Returns ``{"name", "values", "states"}`` (values None unless COMPLETE).
    """
    import sqlalchemy as sa
    from optuna.distributions import CategoricalDistribution, distribution_to_json

    from hadanas.config import OBJECTIVES
    from hadanas.search import open_storage
    from hadanas.spaces import RandomChooser, get_space

    storage = open_storage(url)
    directions = [OBJECTIVES[o] for o in objectives]
    study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    for k, v in {"hadanas_version": "test", "space": space, "dataset": "synthetic",
                 "objectives": list(objectives), "created_at": "2026-01-01T00:00:00+00:00"}.items():
        study.set_user_attr(k, v)
    sp = get_space(space)
    rng = random.Random(seed)
    t0 = datetime(2026, 1, 1)
    with storage.engine.connect() as conn:
        start_id = (conn.execute(sa.text("SELECT max(trial_id) FROM trials")).scalar() or 0) + 1
    dist_json: dict[str, str] = {}
    dists: dict[str, CategoricalDistribution] = {}
    drawn: dict[int, tuple[dict[str, str], list[tuple[str, float, str]]]] = {}

    def draw(k: int) -> tuple[dict[str, str], list[tuple[str, float, str]]]:
        """JSON of the spec attrs, and the param rows, of distinct spec k."""
        if k not in drawn:
            ch = RandomChooser(seed * 1_000_003 + k)
            spec = sp.suggest(ch)
            rows = []
            for pname, pval in ch.params.items():
                if pname not in dists:
                    dists[pname] = CategoricalDistribution(_choices_of(sp, pname))
                    dist_json[pname] = distribution_to_json(dists[pname])
                rows.append((pname, float(dists[pname].to_internal_repr(pval)), dist_json[pname]))
            drawn[k] = ({"spec": json.dumps(spec.to_dict()), "fingerprint": json.dumps(spec.fingerprint()),
                         "summary": json.dumps(spec.summary())}, rows)
        return drawn[k]

    trials, values, attrs, params = [], [], [], []
    out_values: list[tuple[float, ...] | None] = []
    out_states: list[str] = []
    stamp = "%Y-%m-%d %H:%M:%S.%f"
    for i in range(n):
        tid = start_id + i
        spec_json, prows = draw(i % distinct_specs)
        flops = int(10 ** rng.uniform(5, 8))
        prm = flops // 40
        acc = min(0.995, max(0.05, 0.15 * math.log10(flops) - 0.35 + acc_shift + rng.gauss(0, 0.06)))
        lat = 0.02 * flops / 1e6 + rng.uniform(0.1, 0.3)
        status, state = "trained", "COMPLETE"
        if 1 <= i <= n_failed:
            state = "FAIL"
        elif n_failed < i <= n_failed + n_infeasible:
            status, acc = "infeasible", 0.0
        if i >= n - n_running:
            state = "RUNNING"
        a: dict[str, Any] = {"params": prm, "flops": flops, "constraints": [0.0], "attempt": 0}
        if state == "COMPLETE":
            a.update({"val_accuracy": acc, "latency_ms": lat, "history": [acc],
                      "epochs": 0 if status == "infeasible" else 1, "status": status,
                      "device": "cpu", "node_id": "n0", "wall_time_s": 1.0,
                      "weights_artifact": None if status == "infeasible" else f"w{i}"})
        elif state == "FAIL":
            a["fail_reason"] = "non-finite loss at epoch 1"
        start = t0 + timedelta(seconds=2 * i)
        trials.append((tid, i, study._study_id, state, start.strftime(stamp),
                       None if state == "RUNNING" else (start + timedelta(seconds=1)).strftime(stamp)))
        obj = {"accuracy": acc, "flops": float(flops), "params": float(prm), "latency": lat}
        vals = tuple(obj[o] for o in objectives)
        if state == "COMPLETE":
            values += [(tid, k, v, "FINITE") for k, v in enumerate(vals)]
        out_values.append(vals if state == "COMPLETE" else None)
        out_states.append(state)
        attrs += [(tid, k, v) for k, v in spec_json.items()]
        attrs += [(tid, k, json.dumps(v)) for k, v in a.items()]
        params += [(tid, *row) for row in prows]
    with storage.engine.begin() as conn:  # the DB-API directly: Optuna's table layout
        conn.exec_driver_sql("INSERT INTO trials (trial_id, number, study_id, state, datetime_start, "
                             "datetime_complete) VALUES (?, ?, ?, ?, ?, ?)", trials)
        if values:
            conn.exec_driver_sql("INSERT INTO trial_values (trial_id, objective, value, value_type) "
                                 "VALUES (?, ?, ?, ?)", values)
        conn.exec_driver_sql("INSERT INTO trial_user_attributes (trial_id, key, value_json) "
                             "VALUES (?, ?, ?)", attrs)
        conn.exec_driver_sql("INSERT INTO trial_params (trial_id, param_name, param_value, "
                             "distribution_json) VALUES (?, ?, ?, ?)", params)
    storage.engine.dispose()
    return {"name": name, "values": out_values, "states": out_states}


def _choices_of(space: Any, pname: str) -> list[Any]:
    """The choices a space offers for one optuna param name (as SearchSpace.suggest asks)."""
    reg = space.registry
    if pname == "width":
        return list(space.widths)
    if pname == "cells_per_stage":
        return list(space.cells_per_stage)
    if pname == "input_fusion":
        return list(space.input_fusions)
    parts = pname.split(".")
    if parts[-1] == "src":
        return list(range(int(parts[0][4:])))
    if parts[-1] == "op":
        return list(space.edge_ops)
    if parts[-1] == "combine":
        return list(space.combines)
    # prefix.op.knob
    return list(reg.get(parts[-2]).knobs[parts[-1]])


@pytest.fixture(scope="session")
def make_study() -> Callable[..., dict[str, Any]]:
    return bulk_study


@pytest.fixture(scope="session")
def tiny_copy(tiny_search: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A writable copy of the session's real tiny search, plus a synthetic second study
    ``conventional-synthetic`` (real conventional-space specs, synthetic values) to overlay.
    """
    d = tmp_path_factory.mktemp("tiny-copy")
    src = Path(str(tiny_search["storage"]).split(":///", 1)[1])
    dst = d / "hadanas.db"
    with contextlib.closing(sqlite3.connect(src)) as a, contextlib.closing(sqlite3.connect(dst)) as b:
        a.backup(b)
    url = f"sqlite:///{dst}"
    bulk_study(url, "conventional-synthetic", 8, seed=3, space="conventional", acc_shift=-0.15)
    return {"storage": url, "study": tiny_search["study"], "compare": "conventional-synthetic",
            "dir": d}


@contextlib.contextmanager
def running_server(app: Any, host: str = "127.0.0.1") -> Iterator[Any]:
    """Serve ``app`` on a free port in a thread; always shut down."""
    from hadanas.dashboards import make_server

    server = make_server(app, host, 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def serve() -> Callable[..., Any]:
    return running_server


def http_get(url: str, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="session")
def get() -> Callable[..., tuple[int, dict[str, str], bytes]]:
    return http_get


@pytest.fixture(scope="session")
def require(request: pytest.FixtureRequest) -> Callable[[bool, str], None]:
    """tests/conftest.py's require(): skip on a developer machine, fail in CI."""
    root = str(Path(__file__).resolve().parents[1] / "conftest.py")
    for plugin in request.config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) == root:
            return plugin.require  # type: ignore[no-any-return]
    raise RuntimeError(f"{root} is not loaded as a conftest plugin")


@pytest.fixture(scope="session")
def chrome(require: Callable[[bool, str], None]) -> Iterator[Any]:
    """One headless Chromium (Selenium + the system chromedriver) for the session."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None  # type: ignore[assignment]
    require(webdriver is not None, "selenium is not installed (pip install selenium)")
    require(CHROMIUM.exists() and CHROMEDRIVER.exists(),
            "headless Chromium needs Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="hadanas-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--enable-unsafe-swiftshader",
                 "--window-size=1360,1000", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        driver.set_page_load_timeout(90)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
