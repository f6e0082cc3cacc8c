"""``hadanas export`` against the tiny search's store: exit codes, one-line errors, and the
files of a successful export.

Two commands run as real processes (``.venv/bin/hadanas``: a success and an error), started
together by a module fixture so their interpreter start-ups overlap; the other cases call
``hadanas.cli.main`` in this process (each process would pay seconds of imports), with the
logging state the CLI changes restored afterwards.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hadanas.cli import main

pytestmark = pytest.mark.ray  # uses the shared tiny search (a Ray runtime)

HADANAS = Path(sys.executable).parent / "hadanas"


@pytest.fixture(scope="module")
def processes(tiny_search: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("cli")
    store = ["--storage", tiny_search["storage"], "--study", tiny_search["study"]]
    commands = {
        "pareto": [str(HADANAS), "export", *store, "--pareto", "--out", str(out / "front"),
                   "--formats", "torchscript,code"],
        "unknown_study": [str(HADANAS), "export", "--storage", tiny_search["storage"], "--study",
                          "no-such-study", "--trial", "0", "--out", str(out / "unknown_study")],
    }
    procs = {k: subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, c in commands.items()}
    results = {}
    for k, p in procs.items():
        try:
            stdout, stderr = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            p.kill()
            stdout, stderr = p.communicate()
        results[k] = SimpleNamespace(rc=p.returncode, out=stdout, err=stderr)
    return {"out": out, **results}


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """``cli(*argv)`` -> (exit code, stdout, stderr) of ``hadanas.cli.main`` in-process."""
    import optuna

    root = logging.getLogger("hadanas")
    saved = (list(root.handlers), root.level, root.propagate, optuna.logging.get_verbosity())

    def run(*argv: str) -> SimpleNamespace:
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse errors exit through the parser
            rc = int(exc.code or 0)
        captured = capsys.readouterr()
        return SimpleNamespace(rc=rc, out=captured.out, err=captured.err)

    yield run
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    root.propagate = saved[2]
    optuna.logging.set_verbosity(saved[3])


def _error_line(r: Any) -> str:
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1, r.err[-2000:]  # one line, no traceback
    return lines[0]


def test_a_real_process_exits_0_and_prints_each_check(processes: dict, study: Any) -> None:
    """``--pareto`` as a real process: exit code 0, every member's files and checks printed,
    the index listing the front."""
    from hadanas.search import front_trials

    r = processes["pareto"]
    assert r.rc == 0, r.err[-2000:]
    root = processes["out"] / "front"
    index = json.loads((root / "index.json").read_text())
    front = sorted(t.number for t in front_trials(study))
    assert [m["trial"] for m in index["members"]] == front
    for n in front:
        member = root / f"trial-{n}"
        assert {p.name for p in member.iterdir()} == {"spec.json", "weights.safetensors", "hadanas.json",
                                                      "model.pt", "model.py", "MODEL_CARD.md"}
        meta = json.loads((member / "hadanas.json").read_text())
        assert f"trial {n} -> {member}" in r.out
        assert f"test accuracy {meta['test_accuracy']:.4f} (search weights)" in r.out
        assert "--formats torchscript,code" in (member / "MODEL_CARD.md").read_text()
    assert r.out.count("parity torchscript  max |diff| =") == len(front)
    assert r.out.count("(ok)") == 3 * len(front) and "FAILED" not in r.out
    assert f"{len(front)} front member(s) of study '{study.study_name}'; index {root / 'index.json'}; " \
           "all formats ok" in r.out


def test_a_real_process_exits_2_with_one_line_on_an_unknown_study(processes: dict) -> None:
    r = processes["unknown_study"]
    assert r.rc == 2, (r.out, r.err)
    assert _error_line(r).startswith("hadanas: error: no study named 'no-such-study' in the store.")
    assert not (processes["out"] / "unknown_study").exists()


@pytest.mark.parametrize(("case", "message"), [
    ("not_complete", "is FAIL, not COMPLETE (ValueError: injected by the test)"),
    ("infeasible", "is infeasible (over a constraint"),
    ("no_trial", "has no trial 99 (trials are 0..7)."),
    ("no_onnx", "format 'onnx' needs onnx and onnxruntime, which are not installed: "
                "pip install 'hadanas[onnx]' (or leave onnx out of --formats)."),
    ("bad_format", "unknown export format 'tflite'."),
    ("bad_retrain", "--retrain-epochs must be a positive integer, but got 0."),
    ("both", "argument --pareto: not allowed with argument --trial"),
    ("neither", "one of the arguments --trial --pareto is required"),
])
def test_errors_exit_2_with_one_line(cli: Any, edited_store: dict, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, case: str, message: str) -> None:
    store = ["--storage", edited_store["storage"], "--study", edited_store["study"]]
    out = ["--out", str(tmp_path / "x")]
    argv = {
        "not_complete": [*store, "--trial", str(edited_store["failed"]), *out],
        "infeasible": [*store, "--trial", str(edited_store["infeasible"]), *out],
        "no_trial": [*store, "--trial", "99", *out],
        "no_onnx": [*store, "--trial", "0", *out],
        "bad_format": [*store, "--trial", "0", "--formats", "code,tflite", *out],
        "bad_retrain": [*store, "--trial", "0", "--retrain-epochs", "0", *out],
        "both": [*store, "--trial", "0", "--pareto", *out],
        "neither": [*store, *out],
    }[case]
    if case == "no_onnx":
        monkeypatch.setitem(sys.modules, "onnx", None)
        monkeypatch.setitem(sys.modules, "onnxruntime", None)
    r = cli("export", *argv)
    assert r.rc == 2, (r.out, r.err)
    line = _error_line(r)
    assert line.startswith("hadanas") and message in line, line
    assert not (tmp_path / "x").exists()  # nothing written


def test_a_format_that_cannot_be_written_exits_1_and_names_the_gap(
        cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_search: dict,
        front_trial: int) -> None:
    """Exit code 1 (not 2): the export ran, but one format is missing; the line says why and
    how to leave it out."""
    from hadanas.search import _export

    def broken(*args: Any, **kwargs: Any) -> float:
        raise _export.ExportGap("the test's exporter refuses")

    monkeypatch.setattr(_export, "_torchscript", broken)
    r = cli("export", "--storage", tiny_search["storage"], "--study", tiny_search["study"],
            "--trial", str(front_trial), "--out", str(tmp_path / "gap"), "--formats", "torchscript,code")
    assert r.rc == 1, r.err
    assert "torchscript         NOT WRITTEN: the test's exporter refuses" in r.out
    assert "(to leave out what cannot be written: --formats code)" in r.out
    assert not (tmp_path / "gap" / "model.pt").exists() and (tmp_path / "gap" / "model.py").exists()
