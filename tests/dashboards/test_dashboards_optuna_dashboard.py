"""optuna-dashboard, which users already know, opens a hadanas store unchanged."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import optuna

from hadanas.search import open_storage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_optuna_dashboard_reads_a_hadanas_study(tiny_copy: dict, get: Callable[..., Any],
                                                require: Callable[[bool, str], None]) -> None:
    exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    require(exe is not None, "optuna-dashboard is not installed (pip install optuna-dashboard)")
    assert exe is not None
    port = _free_port()
    proc = subprocess.Popen([exe, tiny_copy["storage"], "--host", "127.0.0.1", "--port", str(port),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                status, _, body = get(base + "/api/studies", timeout=10)
                if status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.time() < deadline, "optuna-dashboard did not answer within 90 s"
            time.sleep(0.3)
        summaries = {s["study_name"]: s for s in json.loads(body)["study_summaries"]}
        ours = summaries[tiny_copy["study"]]
        assert ours["directions"] == ["maximize", "minimize"]
        attrs = {a["key"]: a["value"] for a in ours["user_attrs"]}
        assert json.loads(attrs["objectives"]) == ["accuracy", "flops"] and attrs["space"] == "full"

        status, _, body = get(f"{base}/api/studies/{ours['study_id']}?after=0", timeout=60)
        assert status == 200
        detail = json.loads(body)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    study = optuna.load_study(study_name=tiny_copy["study"],
                              storage=open_storage(tiny_copy["storage"], create=False))
    trials = study.get_trials()
    assert [t["number"] for t in detail["trials"]] == [t.number for t in trials]
    for seen, t in zip(detail["trials"], trials):
        assert seen["state"] == t.state.name.capitalize()
        if t.values is not None:
            assert seen["values"] == t.values
        ua = {a["key"]: a["value"] for a in seen["user_attrs"]}
        assert json.loads(ua["spec"]) == t.user_attrs["spec"]
        assert ua["fingerprint"] == t.user_attrs["fingerprint"] and ua["status"] == t.user_attrs["status"]
        assert {p["name"] for p in seen["params"]} == set(t.params)
    # optuna-dashboard's own Pareto front is ours (the tiny study has no infeasible trial)
    assert all(t.user_attrs.get("status") != "infeasible" for t in trials)
    from hadanas.search import front_trials

    assert sorted(t["number"] for t in detail["best_trials"]) == [t.number for t in front_trials(study)]
