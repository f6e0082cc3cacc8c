"""Session-wide fixtures: one Ray runtime and one small real search shared by the suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NB201_CSV = SHARED / "nas" / "nb201.csv"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # In CI a missing service is a failure, not a skip: tests call require() below.
    pass


def require(condition: bool, reason: str) -> None:
    """Skip on a developer machine, fail in CI (CI=true), when ``condition`` is false."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray runtime (2 CPUs) for the whole test session."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_search(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real search (6 trials, 1 epoch, digits) in a fresh SQLite store.

    Returns ``{"storage": url, "study": name, "result": SearchResult, "dir": Path}``.
    Tests must treat the store as read-only.
    """
    from hadanas.config import SearchConfig
    from hadanas.search import run_search

    d = tmp_path_factory.mktemp("tiny-search")
    url = f"sqlite:///{d / 'hadanas.db'}"
    config = SearchConfig(trials=6, epochs=1, storage=url, out=str(d / "out"), seed=0,
                          max_concurrent=2)
    result = run_search(config, keep_workers=True)
    return {"storage": url, "study": result.study_name, "result": result, "dir": d}


#: Lines the tests with real processes report (trial counts of kills, nodes of a cluster run).
_EVIDENCE: list[str] = []


@pytest.fixture()
def evidence() -> Any:
    """``evidence(line)``: a figure printed in the terminal summary at the end of the run."""
    return _EVIDENCE.append


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What the tests with real processes measured, and how many inputs the fuzz tests
    (tests/reliability) tried in this run (also written as JSON to $HADANAS_FUZZ_COUNTS when
    set)."""
    import sys

    if _EVIDENCE:
        terminalreporter.write_sep("-", "measured by the tests")
        for line in _EVIDENCE:
            terminalreporter.write_line(f"  {line}")

    fuzz = sys.modules.get("_fuzz")
    if fuzz is None or not fuzz.TRIED:
        return
    terminalreporter.write_sep("-", f"fuzz inputs tried: {sum(fuzz.TRIED.values())}")
    for name, n in sorted(fuzz.TRIED.items()):
        terminalreporter.write_line(f"  {name}: {n}")
    if os.environ.get("HADANAS_FUZZ_COUNTS"):
        fuzz.write_counts(os.environ["HADANAS_FUZZ_COUNTS"])
