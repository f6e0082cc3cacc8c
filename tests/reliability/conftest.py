"""Reports how many inputs the fuzz tests tried (and writes them where HADANAS_FUZZ_COUNTS says)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    import _fuzz

    if not _fuzz.TRIED:
        return
    total = sum(_fuzz.TRIED.values())
    terminalreporter.write_sep("-", f"fuzz inputs tried: {total}")
    for name, n in sorted(_fuzz.TRIED.items()):
        terminalreporter.write_line(f"  {name}: {n}")
    if os.environ.get("HADANAS_FUZZ_COUNTS"):
        _fuzz.write_counts(os.environ["HADANAS_FUZZ_COUNTS"])
