"""A 10,000-trial study: the server renders its front in under 2 s of server time.

Measured through the server itself: a fresh server (nothing read yet) answers
``/api/front.json``, and its ``Server-Timing`` header gives the time the request spent in
the server: ``cpu`` (CPU time of the request's thread: reading SQLite, shaping, drawing,
JSON), and ``total`` (wall time, which on a shared machine also counts other processes).
The best of three cold runs must stay under 2 s of CPU time.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable

import numpy as np
import pytest

from hadanas.dashboards import Dashboard
from hadanas.search import open_storage

N = 10_000
BUDGET_S = 2.0
RUNS = 3  # best of three cold runs: the code's cost, not a busy machine's noise


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory, make_study: Callable[..., dict]) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'big.db'}"
    t0 = time.perf_counter()
    made = make_study(url, "big", N, seed=1, n_failed=40, n_infeasible=150, n_running=3)
    print(f"\nbuilt a {N}-trial study in {time.perf_counter() - t0:.1f} s")
    return {"url": url, **made}


def _array(v: Any) -> list[Any]:
    """A Plotly JSON array: a list, or a typed array {"dtype", "bdata"}."""
    if isinstance(v, dict):
        import base64

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


def _timing(header: str) -> dict[str, float]:
    return {k: float(v) / 1000 for k, v in re.findall(r"(\w+);dur=([\d.]+)", header)}


def _check_front(front: set[int], values: list[Any], states: list[str], feasible: list[bool]) -> None:
    """Brute force in O(n f): no point dominates a front point, and every other feasible
    point is dominated by a front point (dominance is transitive, so that is complete)."""
    idx = [i for i, (s, f) in enumerate(zip(states, feasible)) if s == "COMPLETE" and f]
    p = np.array([[-values[i][0], values[i][1]] for i in idx])  # minimise both
    on = np.array([i in front for i in idx])
    assert on.sum() == len(front) > 0
    f = p[on]

    def dominated_by(q: np.ndarray, x: np.ndarray) -> np.ndarray:  # (len(x),): some q dominates
        le = np.all(q[None, :, :] <= x[:, None, :], axis=2)
        lt = np.any(q[None, :, :] < x[:, None, :], axis=2)
        return np.any(le & lt, axis=1)

    assert not dominated_by(p, f).any()
    assert dominated_by(f, p[~on]).all()


def test_front_of_10k_trials_renders_in_under_2s(big: dict[str, Any], serve: Callable[..., Any],
                                                 get: Callable[..., Any]) -> None:
    runs: list[dict[str, float]] = []
    for _ in range(RUNS):  # a fresh server each time: nothing read, nothing cached
        app = Dashboard(open_storage(big["url"], create=False), "big", storage_url=big["url"])
        with serve(app) as server:
            t0 = time.perf_counter()
            status, headers, body = get(server.url + "api/front.json", timeout=120)
            client_s = time.perf_counter() - t0
            assert status == 200
            runs.append({**_timing(headers["Server-Timing"]), "client": client_s})
            if len(runs) == RUNS:
                status2, headers2, _ = get(server.url + "api/front.json", timeout=120)
                again = _timing(headers2["Server-Timing"])
                status3, headers3, views_body = get(server.url + "api/views.json", timeout=120)
                views = _timing(headers3["Server-Timing"])
                assert status2 == status3 == 200
    first = min(runs, key=lambda r: r["cpu"])
    print(f"\n{N}-trial front, cold server, {RUNS} runs: server cpu "
          + ", ".join(f"{r['cpu']:.2f}" for r in runs) + " s; wall "
          + ", ".join(f"{r['total']:.2f}" for r in runs) + " s\n"
          f"best run: read {first['read']:.2f}, shape {first['shape']:.2f}, figures "
          f"{first['figures']:.2f}, json {first['json']:.2f} s; client saw {first['client']:.2f} s "
          f"for {len(body) / 1e6:.1f} MB\n"
          f"unchanged study, next request: {again['total']:.3f} s; other views (families, "
          f"ops, parallel coordinates, with every spec): cpu {views['cpu']:.2f} s, wall "
          f"{views['total']:.2f} s")
    assert first["cpu"] < BUDGET_S
    # the front it drew is the brute-force front
    d = json.loads(body)
    feasible = [True] * N
    for i in range(41, 41 + 150):
        feasible[i] = False
    _check_front(set(d["front_numbers"]), big["values"], big["states"], feasible)
    assert d["counts"] == {"total": N, "complete": N - 40 - 3, "front": len(d["front_numbers"]),
                           "failed": 40, "running": 3, "infeasible": 150}
    drawn = sum(len(_array(t["customdata"])) for t in d["figures"]["pareto"]["data"]
                if "markers" in t.get("mode", ""))
    assert drawn == N - 3  # every completed trial and every failed one (its cost is known)
    assert json.loads(views_body)["figures"]["parallel"]["data"][0]["dimensions"]
