"""`hadanas dashboard --out`: one self-contained HTML file that shows the stored study."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from plotly.offline import get_plotlyjs

from hadanas.cli import main
from hadanas.search import open_storage, to_minimization


def embedded_payload(text: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="hadanas-data">(.*?)</script>', text, re.S)
    assert m, "no embedded payload"
    return json.loads(m.group(1))


def store_truth(url: str, name: str) -> dict[str, Any]:
    """What the report must show, computed straight from Optuna (brute-force front)."""
    study = optuna.load_study(study_name=name, storage=open_storage(url, create=False))
    done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    feas = [t for t in done if t.user_attrs.get("status") != "infeasible"]
    dirs = ["maximize" if d.name == "MAXIMIZE" else "minimize" for d in study.directions]
    p = to_minimization(np.array([t.values for t in feas]), dirs)
    front = sorted(t.number for t, x in zip(feas, p)
                   if not any(np.all(q <= x) and np.any(q < x) for q in p))
    return {"complete": len(done), "front": front, "trials": len(study.trials),
            "failed": sum(t.state.name == "FAIL" for t in study.trials),
            "finished": sorted(t.number for t in study.trials if t.state.name in ("COMPLETE", "FAIL"))}


def test_report_is_self_contained_and_shows_the_study(tiny_search: dict, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    rc = main(["dashboard", "--storage", tiny_search["storage"], "--study", tiny_search["study"],
               "--out", str(out)])
    assert rc == 0 and capsys.readouterr().out.strip() == f"wrote {out}"
    text = out.read_text(encoding="utf-8")
    # offline: plotly.js inlined from the installed package, nothing loaded from elsewhere
    assert get_plotlyjs()[:2000] in text
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)=["']?(https?:)?//""", text)
    assert "cdn" not in re.sub(r"<script>.*?</script>", "", text, flags=re.S).lower()
    truth = store_truth(tiny_search["storage"], tiny_search["study"])
    d = embedded_payload(text)
    assert d["study"] == tiny_search["study"]
    assert d["counts"]["complete"] == truth["complete"] and d["counts"]["total"] == truth["trials"]
    assert sorted(d["front_numbers"]) == truth["front"]
    assert sorted(r["number"] for r in d["front"]) == truth["front"]
    assert set(d["figures"]) == {"pareto", "hypervolume", "compare", "families", "ops", "parallel"}
    assert d["figures"]["compare"] is None
    # every trial's detail is embedded (a small study), each with its export command
    assert sorted(map(int, d["details"])) == truth["finished"]
    det = d["details"][str(d["default_trial"])]
    assert f"--trial {d['default_trial']} " in det["export"]
    assert det["graph"]["data"], "the cell graph is drawn"
    assert "Hypervolume over trials (reference point: accuracy 0.0000" in \
        d["figures"]["hypervolume"]["layout"]["title"]["text"]


def test_report_from_an_optuna_study_equals_the_cli_report(tiny_search: dict, tmp_path: Path) -> None:
    """`hadanas search` writes its report from an optuna.Study (Optuna's API); the CLI reads
    the store with the fast reader: the two show the same study."""
    from hadanas.dashboards import write_report

    study = optuna.load_study(study_name=tiny_search["study"],
                              storage=open_storage(tiny_search["storage"], create=False))
    a = embedded_payload(write_report(study, tmp_path / "a.html",
                                      storage_url=tiny_search["storage"]).read_text())
    assert main(["dashboard", "--storage", tiny_search["storage"], "--out", str(tmp_path / "b.html")]) == 0
    b = embedded_payload((tmp_path / "b.html").read_text())
    for key in ("counts", "front", "front_numbers", "reference", "default_trial", "objectives"):
        assert a[key] == b[key], key
    for key in ("pareto", "hypervolume", "families", "ops", "parallel"):
        assert a["figures"][key] == b["figures"][key], key
    assert a["details"] == b["details"]


def test_report_with_an_ablation_overlay(tiny_copy: dict, tmp_path: Path) -> None:
    out = tmp_path / "ablation.html"
    assert main(["dashboard", "--storage", tiny_copy["storage"], "--study", tiny_copy["study"],
                 "--compare", tiny_copy["compare"], "--reference", "0,2e7", "--out", str(out)]) == 0
    d = embedded_payload(out.read_text(encoding="utf-8"))
    assert d["compare"] == [tiny_copy["compare"]] and d["reference"] == [0.0, 2e7]
    names = [t["name"].split(":")[0] for t in d["figures"]["compare"]["data"]]
    assert names == [tiny_copy["study"], tiny_copy["compare"]]
    title = d["figures"]["compare"]["layout"]["title"]["text"]
    assert "hypervolume reference: accuracy 0.0000, flops 20.00M" in title


@pytest.mark.parametrize("argv, message", [
    (["--reference", "0"], "--reference must have 2 values"),
    (["--compare", "no-such-study"], "no study named 'no-such-study'"),
    (["--study", "nope"], "no study named 'nope'"),
    (["--port", "70000", "--serve"], "--port must be in 0..65535"),
    (["--reference", "a,b"], "expected comma-separated numbers"),
])
def test_dashboard_cli_errors(tiny_search: dict, tmp_path: Path, argv: list[str], message: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) if argv[1] == "a,b" else contextlib.nullcontext():
        rc = main(["dashboard", "--storage", tiny_search["storage"], "--out",
                   str(tmp_path / "r.html"), *argv])
        assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("m, kind", [(1, "scatter"), (3, "scatter3d"), (4, "splom")])
def test_report_of_a_plain_optuna_study(m: int, kind: str) -> None:
    """Any Optuna study draws (no hadanas attrs: no specs, generic objective names)."""
    from hadanas.dashboards import report_html

    study = optuna.create_study(directions=["minimize"] * m)
    rng = np.random.default_rng(m)
    for _ in range(12):
        t = study.ask()
        study.tell(t, list(rng.random(m) * 1000))
    t = study.ask()
    study.tell(t, state=optuna.trial.TrialState.FAIL)
    d = embedded_payload(report_html(study))
    assert d["objectives"] == [f"objective {i}" for i in range(m)]
    assert d["counts"]["complete"] == 12 and d["counts"]["failed"] == 1
    assert {t["type"] for t in d["figures"]["pareto"]["data"]} == {kind}
    assert d["figures"]["families"]["data"][0]["x"] == []  # no specs: nothing to attribute
    row = d["front"][0]["values"]
    assert all(re.fullmatch(r"[\d.e+-]+", v) for v in row), row  # 4 significant digits
