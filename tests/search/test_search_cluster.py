"""A real two-node Ray cluster on loopback, and the PostgreSQL store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hadanas.config import SearchConfig
from hadanas.search import latest_study_name, load_study, mask_url, open_storage, run_search

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import require  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _session_pids(session: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if session.encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


@pytest.fixture()
def two_node_cluster() -> Iterator[dict]:
    """`ray start --head` plus a second `ray start --address` node, different resources."""
    port = _free_port()
    tmp = Path(tempfile.mkdtemp(prefix="hn-", dir="/tmp"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.run([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                           "--num-cpus=1", "--resources", json.dumps({"head_node": 1}),
                           f"--temp-dir={tmp}", "--include-dashboard=false"],
                          env=env, capture_output=True, text=True, timeout=180)
    session = ""
    try:
        assert head.returncode == 0, head.stderr[-2000:]
        session = os.path.basename(os.path.realpath(tmp / "session_latest"))
        second = subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1",
                                 "--num-cpus=1", "--resources", json.dumps({"second_node": 1})],
                                env=env, capture_output=True, text=True, timeout=180)
        assert second.returncode == 0, second.stderr[-2000:]
        yield {"address": f"127.0.0.1:{port}", "env": env}
    finally:
        # Stop exactly this cluster's processes (never `ray stop`, which stops every cluster).
        for pid in _session_pids(session) if session else []:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_trials_run_on_both_nodes_of_a_ray_cluster(two_node_cluster: dict, tmp_path: Path, evidence: Any) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hadanas", "search", "--ray-address", two_node_cluster["address"],
         "--trials", "4", "--epochs", "2", "--max-concurrent", "2", "--cpus-per-trial", "1",
         "--study", "cluster"],
        cwd=tmp_path, env=two_node_cluster["env"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="cluster", storage=f"sqlite:///{tmp_path / 'hadanas.db'}")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    nodes = {t.user_attrs["node_id"] for t in complete}
    per_node = Counter(t.user_attrs["node_id"][:8] for t in complete)
    evidence(f"two-node cluster: {len(complete)} trials, per node {dict(per_node)}")
    # One CPU per node and two trials at once: both nodes must have run trials.
    assert len(nodes) == 2, nodes


def _pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3).close()
        return True
    except Exception:
        return False


@pytest.fixture()
def pg_url() -> Iterator[str]:
    require(_pg_available(), "PostgreSQL is not listening on 127.0.0.1:5432")
    import psycopg

    name = f"hadanas_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'contract.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def test_store_contract(store_url: str) -> None:
    """The same behaviour from every backend: create, find latest, load, errors."""
    from hadanas.exceptions import StoreError

    storage = open_storage(store_url)
    with pytest.raises(StoreError, match="no study yet"):
        latest_study_name(storage)
    for name in ("a", "b"):
        s = optuna.create_study(storage=storage, study_name=name, directions=["maximize", "minimize"])
        t = s.ask()
        t.set_user_attr("spec", {"x": 1})
        s.tell(t, [0.5, 10.0])
    assert latest_study_name(storage) == "b"
    assert load_study(storage, None).study_name == "b"
    assert load_study(storage, "a").trials[0].values == [0.5, 10.0]
    with pytest.raises(StoreError, match="no study named 'c'"):
        load_study(storage, "c")


def test_search_on_postgresql(ray_session: None, pg_url: str, tmp_path: Path) -> None:
    config = SearchConfig(trials=3, epochs=1, storage=pg_url, out=str(tmp_path),
                          artifacts=str(tmp_path / "art"), study="pg")
    result = run_search(config, keep_workers=True)
    assert result.completed == 3
    study = load_study(open_storage(pg_url), "pg")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    assert all(t.user_attrs["weights_artifact"] for t in complete)
    assert study.user_attrs["config"]["storage"] == pg_url  # no password to mask here
    # Resume on PostgreSQL continues the same study.
    r2 = run_search(config.replace(trials=4, resume=True), keep_workers=True)
    assert r2.completed == 4 and len(load_study(open_storage(pg_url), "pg").trials) == 4


def test_mask_url_hides_passwords() -> None:
    assert mask_url("postgresql+psycopg://alice:s3cr3t@db:5432/x") == "postgresql+psycopg://alice:***@db:5432/x"
    assert mask_url("sqlite:///hadanas.db") == "sqlite:///hadanas.db"
