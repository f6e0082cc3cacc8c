"""`hadanas dashboard --serve`: routes, payloads against the store, errors, binding."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest
from plotly.offline import get_plotlyjs

from hadanas.dashboards import Dashboard
from hadanas.search import open_storage

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app(tiny_copy: dict) -> Dashboard:
    return Dashboard(open_storage(tiny_copy["storage"], create=False), tiny_copy["study"],
                     [tiny_copy["compare"]], storage_url=tiny_copy["storage"], interval_s=0.5)


def test_routes_serve_the_study(app: Dashboard, tiny_copy: dict, serve: Callable[..., Any],
                                get: Callable[..., Any]) -> None:
    study = optuna.load_study(study_name=tiny_copy["study"],
                              storage=open_storage(tiny_copy["storage"], create=False))
    trials = study.get_trials()
    with serve(app) as server:
        assert server.server_address[0] == "127.0.0.1"
        base = server.url
        status, headers, body = get(base)
        page = body.decode()
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert '<script src="plotly.min.js"></script>' in page
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
        assert '"interval_ms": 500' in page.replace("\\u0022", '"')

        status, headers, body = get(base + "plotly.min.js")
        assert status == 200 and body.decode() == get_plotlyjs()

        status, _, body = get(base + "api/version")
        v = json.loads(body)
        assert status == 200 and v["trials"] == len(trials)
        assert v["complete"] == sum(t.state.name == "COMPLETE" for t in trials)

        status, headers, body = get(base + "api/front.json")
        front = json.loads(body)
        assert status == 200 and front["version"] == v["version"]
        assert "total;dur=" in headers["Server-Timing"] and "cpu;dur=" in headers["Server-Timing"]
        assert front["counts"]["complete"] == v["complete"]
        pareto = front["figures"]["pareto"]
        drawn = sorted(n for t in pareto["data"] if "markers" in t.get("mode", "")
                       for n in _array(t["customdata"]))
        assert drawn == sorted(t.number for t in trials if t.state.name == "COMPLETE")
        assert [t["name"].split(":")[0] for t in front["figures"]["compare"]["data"]] == [
            tiny_copy["study"], tiny_copy["compare"]]

        status, _, body = get(base + "api/views.json")
        views = json.loads(body)
        assert status == 200 and set(views["figures"]) == {"families", "ops", "parallel"}
        ops_on_front = {op for t in trials if t.number in front["front_numbers"]
                        for n in t.user_attrs["spec"]["cell"] for op in [e["op"] for e in n["edges"]]}
        fig_ops = views["figures"]["ops"]["data"][0]
        shown = {op for op, x in zip(fig_ops["y"], _array(fig_ops["x"])) if x > 0}
        assert ops_on_front <= shown

        n = front["default_trial"]
        status, _, body = get(base + f"api/trial/{n}.json")
        det = json.loads(body)
        assert status == 200 and det["number"] == n
        assert json.loads(det["spec_json"]) == study.trials[n].user_attrs["spec"]
        assert det["on_front"] is True and f"--trial {n} " in det["export"]

        for path, code in (("api/trial/9999.json", 404), ("api/trial/x.json", 404),
                           ("nope", 404), ("api/../../etc/passwd", 404)):
            status, _, body = get(base + path)
            assert status == code and "error" in json.loads(body)


def _array(v: Any) -> list[float]:
    """A Plotly JSON array: a list, or a typed array {"dtype", "bdata"}."""
    if isinstance(v, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


def test_a_store_error_answers_503_and_the_server_lives_on(app: Dashboard, serve: Callable[..., Any],
                                                          get: Callable[..., Any],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy.exc

    def broken() -> Any:
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("database is locked"))

    with serve(app) as server:
        monkeypatch.setattr(app, "front", broken)
        status, _, body = get(server.url + "api/front.json")
        assert status == 503 and "database is locked" in json.loads(body)["error"]
        monkeypatch.undo()
        status, _, _ = get(server.url + "api/front.json")
        assert status == 200


def test_a_foreign_host_name_is_refused(app: Dashboard, serve: Callable[..., Any]) -> None:
    import urllib.error
    import urllib.request

    with serve(app) as server:
        port = server.server_address[1]
        for host, code in ((f"evil.example:{port}", 403), (f"localhost:{port}", 200),
                           (f"127.0.0.1:{port}", 200)):
            req = urllib.request.Request(server.url + "api/version", headers={"Host": host})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    status = r.status
            except urllib.error.HTTPError as e:
                status = e.code
            assert status == code, host


def test_cli_binds_localhost_by_default() -> None:
    from hadanas.dashboards import _cli

    parser = argparse.ArgumentParser()
    _cli.add_parser(parser.add_subparsers(), lambda p: p.add_argument("--storage"))
    args = parser.parse_args(["dashboard", "--serve"])
    assert (args.host, args.port, args.out, args.compare) == ("127.0.0.1", 8765, None, [])


def test_cli_serve_warns_when_binding_wider(tiny_copy: dict, get: Callable[..., Any]) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hadanas", "dashboard", "--serve", "--host", "0.0.0.0", "--port", "0",
         "--storage", tiny_copy["storage"], "--study", tiny_copy["study"]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        line = proc.stdout.readline() if proc.stdout else ""  # blocks until serving
        m = re.match(r"serving study '(.+)' at http://0\.0\.0\.0:(\d+)/ \(Ctrl-C to stop\)", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        assert m.group(1) == tiny_copy["study"]
        status, _, body = get(f"http://127.0.0.1:{m.group(2)}/api/version")
        assert status == 200 and json.loads(body)["trials"] > 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    err = proc.stderr.read() if proc.stderr else ""
    assert err.startswith("warning: serving on 0.0.0.0, reachable from other machines"), err
