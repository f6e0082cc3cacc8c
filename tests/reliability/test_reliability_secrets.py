"""A storage password never shows: not in the search's progress and log lines, the Pareto
table, the study's attrs or any trial attr in the database, the HTML report, the live
dashboard's payloads, nor in the error for a store that cannot be opened.

The PostgreSQL test server trusts local connections, so a URL with a password connects and
the password is simply unused: a real search runs on it (benchmark mode, no training).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SECRET = "s3cr3t-Pw0rd"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _root_conftest() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_hadanas_tests_conftest",
                                                  Path(__file__).resolve().parents[1] / "conftest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_ROOT = _root_conftest()


def _pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
        return True
    except Exception:
        return False


@pytest.fixture()
def pg_db() -> Iterator[str]:
    _ROOT.require(_pg_available(), "PostgreSQL is not listening on 127.0.0.1:5432 (user postgres, trust auth)")
    import psycopg

    name = f"hadanas_secret_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _hadanas(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hadanas", *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=600, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_a_storage_password_never_shows(pg_db: str, tmp_path: Path, form: str) -> None:
    _ROOT.require(_ROOT.NB201_CSV.is_file(), f"NAS-Bench-201 table not found at {_ROOT.NB201_CSV}")
    url = (f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:5432/{pg_db}" if form == "userinfo"
           else f"postgresql+psycopg://127.0.0.1:5432/{pg_db}?user=postgres&password={SECRET}")
    seen: dict[str, str] = {}
    search = _hadanas("search", "--space", "nb201", "--benchmark-file", str(_ROOT.NB201_CSV), "--trials", "6",
                      "--storage", url, "--study", "secret", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert search.returncode == 0, search.stderr[-3000:]
    seen["search stdout (front table)"] = search.stdout
    seen["search stderr (progress and logs)"] = search.stderr
    assert "trial" in search.stderr  # progress lines were printed, and checked
    seen["report.html of the search"] = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    pareto = _hadanas("pareto", "--storage", url, "--json", cwd=tmp_path)
    assert pareto.returncode == 0, pareto.stderr
    seen["pareto --json"] = pareto.stdout + pareto.stderr
    dash = _hadanas("dashboard", "--storage", url, "--out", str(tmp_path / "d.html"), cwd=tmp_path)
    assert dash.returncode == 0, dash.stderr
    seen["dashboard --out"] = dash.stdout + dash.stderr + (tmp_path / "d.html").read_text(encoding="utf-8")

    # The live dashboard's payloads, from the app the server wraps.
    from hadanas.dashboards._app import Dashboard
    from hadanas.search import load_study, open_storage

    storage = open_storage(url, create=False)
    app = Dashboard(storage, "secret", [], None, url, 2.0)
    seen["live dashboard front.json"] = app.front()[1].decode()
    seen["live dashboard views.json"] = app.views()[1].decode()
    seen["live dashboard trial 0"] = app.trial(0).decode()

    # Everything in the database: study attrs (the config with its storage URL) and trial attrs.
    study = load_study(storage, "secret")
    assert "***" in study.user_attrs["config"]["storage"]
    seen["study user attrs"] = json.dumps(study.user_attrs)
    seen["study system attrs"] = json.dumps(storage.get_study_system_attrs(study._study_id), default=str)
    seen["trial attrs"] = json.dumps([[t.user_attrs, t.system_attrs] for t in study.trials], default=str)
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{pg_db}") as con:
        rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()
        dump = []
        for (table,) in rows:
            dump += [repr(r) for r in con.execute(f'SELECT * FROM "{table}"').fetchall()]
    seen["every row of every table"] = "\n".join(dump)

    leaks = [where for where, text in seen.items() if SECRET in text]
    assert not leaks, f"the password shows in: {leaks}"


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://alice:{SECRET}@127.0.0.1:1/x",
    f"postgresql+psycopg://127.0.0.1:1/x?user=alice&password={SECRET}",
    f"postgresql+psycopg://alice:{SECRET}@no-such-host.invalid/x",
])
@pytest.mark.parametrize("verb", ["pareto", "search", "dashboard"])
def test_a_store_that_cannot_be_opened_does_not_show_its_password(
        url: str, verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hadanas.cli import main

    argv = [verb, "--storage", url]
    if verb == "search":
        argv += (["--space", "nb201", "--benchmark-file", str(_ROOT.NB201_CSV)] if _ROOT.NB201_CSV.is_file()
                 else ["--trials", "1", "--epochs", "1"]) + ["--quiet", "--out", str(tmp_path / "out")]
    if verb == "dashboard":
        argv += ["--out", str(tmp_path / "d.html")]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert SECRET not in captured.out + captured.err, captured.err
    assert "***" in captured.err and "cannot open storage" in captured.err
