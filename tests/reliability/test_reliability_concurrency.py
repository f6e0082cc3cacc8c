"""Many real processes writing one study through hadanas's own store path.

16 processes on one PostgreSQL study and 4 on one SQLite study, each a benchmark-mode
search (NAS-Bench-201 table look-ups: no training, so the store is the bottleneck) started
at the same instant. Checked: every process exits 0 with no error, no trial is lost or
duplicated (trial numbers unique and contiguous, every trial COMPLETE, the per-process
counts that the searches report add up to what the store holds, and every trial is
attributed to exactly one writer), and every trial's values and attrs belong to that trial
(its params rebuild its spec; its accuracy and FLOPs are its own cell's table row).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _root_conftest() -> Any:
    """tests/conftest.py by path ('conftest' in sys.modules is whichever folder's loaded last)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_hadanas_tests_conftest",
                                                  Path(__file__).resolve().parents[1] / "conftest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_ROOT = _root_conftest()
NB201_CSV, require = _ROOT.NB201_CSV, _ROOT.require

WRITER = Path(__file__).with_name("_writer.py")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
        return True
    except Exception:
        return False


@pytest.fixture()
def fresh_pg() -> Iterator[str]:
    require(_pg_available(), "PostgreSQL is not listening on 127.0.0.1:5432 (user postgres, trust auth)")
    import psycopg

    name = f"hadanas_conc_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _need_table() -> str:
    require(NB201_CSV.is_file(), f"NAS-Bench-201 table not found at {NB201_CSV} "
            "(../shared/nas/nb201.csv from the repository root)")
    return str(NB201_CSV)


def _run_writers(storage: str, study: str, n: int, target: int, tmp: Path) -> tuple[list[dict[str, Any]], float]:
    """Start ``n`` writers, release them together, wait; return their reports and the wall time."""
    csv = _need_table()
    ready, go = tmp / "ready", tmp / "go"
    ready.mkdir()
    from hadanas.search._nb201 import _op_costs

    costs = tmp / "nb201-op-costs.json"
    costs.write_text(json.dumps(_op_costs("nb201")), encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    procs = []
    for i in range(n):
        cmd = ["nice", "-n", "10", sys.executable, str(WRITER), f"w{i}", storage, study, str(target),
               str(i), csv, str(ready), str(go), str(costs)]
        procs.append(subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    try:
        deadline = time.monotonic() + 900
        while len(list(ready.iterdir())) < n:
            dead = [p for p in procs if p.poll() is not None]
            assert not dead, f"a writer exited before the start: {dead[0].communicate()[1][-3000:]}"
            assert time.monotonic() < deadline, "writers were not ready within 900 s"
            time.sleep(0.1)
        t0 = time.perf_counter()
        go.touch()
        outs = [p.communicate(timeout=600) for p in procs]
        wall = time.perf_counter() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    errors = [f"writer w{i} exited {p.returncode}: {err.strip()[-2000:]}"
              for i, (p, (_, err)) in enumerate(zip(procs, outs)) if p.returncode != 0]
    assert not errors, "\n".join(errors)
    noisy = [f"w{i}: {err.strip()[-1000:]}" for i, (_, err) in enumerate(outs)
             if "Traceback" in err or "rror" in err]
    assert not noisy, "writers reported errors:\n" + "\n".join(noisy)
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    return reports, wall


def _check_study(storage: str, study_name: str, reports: list[dict[str, Any]], target: int) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    from hadanas.search import load_study, open_storage
    from hadanas.search._nb201 import NB201Table, nb201_costs
    from hadanas.spaces import ArchSpec, get_space

    study = load_study(open_storage(storage, create=False), study_name)
    assert [s.study_name for s in study._storage.get_all_studies()] == [study_name], \
        "the writers made more than one study"
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    ids = [t._trial_id for t in trials]
    states = Counter(t.state.name for t in trials)
    # 0 duplicated: numbers and ids unique; 0 lost: numbers contiguous from 0.
    assert len(set(ids)) == len(ids), "duplicate trial ids"
    dup_numbers = [n for n, c in Counter(numbers).items() if c > 1]
    assert not dup_numbers, f"trial numbers used twice: {dup_numbers[:20]}"
    assert sorted(numbers) == list(range(len(trials))), (
        f"trial numbers are not contiguous: missing {sorted(set(range(max(numbers) + 1)) - set(numbers))[:20]}")
    # 0 errors: every trial asked was told COMPLETE.
    failed = [(t.number, t.user_attrs.get("reliability_writer"), t.user_attrs.get("fail_reason"))
              for t in trials if t.state.name != "COMPLETE"]
    assert states == Counter({"COMPLETE": len(trials)}), (
        f"trial states {dict(states)}; not complete (number, writer, fail_reason): {failed[:10]}; "
        f"writers' stats: {[(r['tag'], r['stats']) for r in reports]}")

    # The counts the searches report add up to what the store holds, writer by writer.
    told = {r["tag"]: sum(r["stats"][k] for k in ("trained", "stopped_early", "duplicates", "infeasible"))
            for r in reports}
    assert all(r["stats"]["failed"] == 0 for r in reports), [r["stats"] for r in reports]
    tags = Counter(t.user_attrs.get("reliability_writer") for t in trials)
    assert None not in tags, f"{tags[None]} trial(s) attributed to no writer"
    assert dict(tags) == {k: v for k, v in told.items() if v}, f"store {dict(tags)} vs reported {told}"
    assert sum(told.values()) == len(trials)
    assert len(trials) >= target  # the study reached what every writer asked for

    # Each trial's record is its own: params -> spec -> table row and costs.
    space = get_space("nb201")
    table = NB201Table.load(str(NB201_CSV))

    class Replay:
        def __init__(self, params: dict[str, Any]) -> None:
            self.params = params

        def suggest_categorical(self, name: str, choices: Any) -> Any:
            return self.params[name]

    objectives = study.user_attrs["objectives"]
    for t in trials:
        a = t.user_attrs
        spec = ArchSpec.from_dict(a["spec"])
        assert space.suggest(Replay(t.params)).fingerprint() == spec.fingerprint() == a["fingerprint"], \
            f"trial {t.number}: params and stored spec disagree"
        arch = space.to_nb201(spec)
        assert a["arch_str"] == arch, f"trial {t.number}: arch_str is another trial's"
        row = table.rows[arch]
        assert math.isclose(a["val_accuracy"], row.valid_200), f"trial {t.number}: accuracy is another cell's"
        params, flops = nb201_costs(space, spec)
        assert (a["params"], a["flops"]) == (params, flops), f"trial {t.number}: costs are another cell's"
        expect = {"accuracy": row.valid_200, "flops": flops, "params": params}
        assert [expect[o] for o in objectives] == pytest.approx(t.values), f"trial {t.number}: values"
    return {"trials": len(trials), "writers": len(reports), "per_writer": dict(tags)}


def _report(label: str, facts: dict[str, Any], wall: float, evidence: Any) -> None:
    line = (f"{label}: {facts['writers']} processes, {facts['trials']} trials in {wall:.1f} s, "
            f"0 errors, 0 lost, 0 duplicated; per writer {sorted(facts['per_writer'].values())}")
    evidence(line)
    out = os.environ.get("HADANAS_RELIABILITY_LOG")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(line + "\n")


@pytest.mark.slow
@pytest.mark.postgres
def test_16_processes_write_one_postgresql_study(fresh_pg: str, tmp_path: Path, evidence: Any) -> None:
    target = 16
    reports, wall = _run_writers(fresh_pg, "conc-pg", 16, target, tmp_path)
    facts = _check_study(fresh_pg, "conc-pg", reports, target)
    assert facts["writers"] == 16 and len(facts["per_writer"]) >= 2, facts
    _report("PostgreSQL", facts, wall, evidence)


@pytest.mark.slow
def test_4_processes_write_one_sqlite_study(tmp_path: Path, evidence: Any) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    target = 60  # enough work that one writer cannot finish it before the others start
    reports, wall = _run_writers(url, "conc-sqlite", 4, target, tmp_path)
    facts = _check_study(url, "conc-sqlite", reports, target)
    assert facts["writers"] == 4 and len(facts["per_writer"]) >= 2, facts
    _report("SQLite", facts, wall, evidence)
