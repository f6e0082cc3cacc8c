"""The dashboards in a real browser: headless Chromium draws every point, logs no error,
refreshes while the study grows, and opens the report offline. Takes one screenshot per
main view, into a temporary folder; with HADANAS_SCREENSHOTS=DIR into DIR (the README's
pictures: HADANAS_SCREENSHOTS=docs/screenshots)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest

from hadanas.cli import main
from hadanas.dashboards import Dashboard
from hadanas.search import front_trials, open_storage

pytestmark = pytest.mark.browser

VIEWS = {"pareto": "sec-pareto", "front-table": "sec-front", "detail": "sec-detail",
         "hypervolume": "sec-hypervolume", "families": "sec-families", "parallel": "sec-parallel",
         "ablation": "sec-compare"}


def _wait(driver: Any, cond: Callable[[Any], Any], timeout: float, what: str) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond(driver)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _ready(driver: Any, not_version: str | None = None, timeout: float = 120) -> str:
    def cond(d: Any) -> str | None:
        ready, version = d.execute_script(
            "return [document.body.dataset.ready, document.body.dataset.version];")
        return version if ready == "1" and version and version != not_version else None

    return str(_wait(driver, cond, timeout, "the page to draw every figure"))


def _points(driver: Any, div: str) -> int:
    return int(driver.execute_script(
        f"return document.querySelectorAll('#{div} .scatterlayer .trace .points path.point').length;"))


def _errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _expected(url: str, name: str) -> dict[str, Any]:
    study = optuna.load_study(study_name=name, storage=open_storage(url, create=False))
    trials = study.get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    failed_with_cost = [t for t in trials if t.state.name == "FAIL" and t.user_attrs.get("flops")]
    return {"points": len(complete) + len(failed_with_cost),
            "front": [t.number for t in front_trials(study)], "study": study}


def test_live_dashboard_in_chromium(chrome: Any, tiny_copy: dict, tmp_path: Path,
                                    serve: Callable[..., Any]) -> None:
    db = tmp_path / "live.db"  # this test writes a trial: its own copy of the store
    with contextlib.closing(sqlite3.connect(Path(tiny_copy["storage"].split(":///", 1)[1]))) as a, \
            contextlib.closing(sqlite3.connect(db)) as b:
        a.backup(b)
    url = f"sqlite:///{db}"
    name, other = tiny_copy["study"], tiny_copy["compare"]
    exp = _expected(url, name)
    other_front = len(front_trials(optuna.load_study(study_name=other,
                                                     storage=open_storage(url, create=False))))
    app = Dashboard(open_storage(url, create=False), name, [other], storage_url=url, interval_s=0.5)
    with serve(app) as server:
        chrome.get(server.url)
        version = _ready(chrome)
        assert _points(chrome, "fig-pareto") == exp["points"]
        assert _points(chrome, "fig-compare") == len(exp["front"]) + other_front
        rows = chrome.execute_script("return Array.from(document.querySelectorAll('#front-body tr'))"
                                     ".map(r => Number(r.dataset.trial));")
        assert sorted(rows) == exp["front"]
        assert chrome.execute_script("return document.querySelectorAll("
                                     "'#fig-parallel .parcoords, #fig-parallel canvas').length;") > 0
        assert chrome.execute_script("return document.querySelectorAll("
                                     "'#fig-families .bars path').length;") > 0
        default = chrome.execute_script("return document.getElementById('detail-title').textContent;")
        assert default.startswith("trial ")
        _wait(chrome, lambda d: d.execute_script(
            "return document.querySelectorAll('#fig-cell .scatterlayer .trace').length;") > 0,
            30, "the cell graph")
        assert _errors(chrome) == []

        shots = Path(os.environ.get("HADANAS_SCREENSHOTS") or tmp_path / "screenshots")
        shots.mkdir(parents=True, exist_ok=True)
        for view, section in VIEWS.items():
            el = chrome.find_element("id", section)
            chrome.execute_script("arguments[0].scrollIntoView();", el)
            time.sleep(0.3)
            path = shots / f"dashboard-{view}.png"
            assert el.screenshot(str(path)), path
            assert path.stat().st_size > 5000

        # choosing another front trial in the table shows its detail and export command
        other_trial = [n for n in exp["front"] if f"trial {n} " not in default + " "][0]
        chrome.execute_script(f"document.querySelector('#front-body tr[data-trial=\"{other_trial}\"]')"
                              ".click();")
        _wait(chrome, lambda d: d.execute_script(
            "return document.getElementById('detail-title').textContent;").startswith(
            f"trial {other_trial} "), 30, f"trial {other_trial}'s detail")
        export = chrome.execute_script("return document.getElementById('detail-export').textContent;")
        assert f"--trial {other_trial} " in export and f"--study {name}" in export

        # a search adds a trial: the open page redraws with one more point, no reload
        study = exp["study"]
        src = study.trials[exp["front"][0]]
        t = study.ask()
        for k, v in src.user_attrs.items():
            t.set_user_attr(k, v)
        study.tell(t, [0.01, float(src.values[1]) * 3])  # dominated: the front stays
        _ready(chrome, not_version=version, timeout=60)
        assert _points(chrome, "fig-pareto") == exp["points"] + 1
        assert _errors(chrome) == []


def test_report_opens_offline_in_chromium(chrome: Any, tiny_search: dict, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["dashboard", "--storage", tiny_search["storage"], "--study", tiny_search["study"],
                 "--out", str(out)]) == 0
    exp = _expected(tiny_search["storage"], tiny_search["study"])
    chrome.get(out.as_uri())
    _ready(chrome)
    assert _points(chrome, "fig-pareto") == exp["points"]
    assert _errors(chrome) == []
    loaded = chrome.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);")
    assert [u for u in loaded if not u.startswith(("file:", "data:"))] == []
    # a click on a drawn marker selects its trial (Plotly's own click event)
    from selenium.webdriver.common.action_chains import ActionChains

    default = chrome.execute_script("return document.getElementById('detail-title').textContent;")
    chrome.execute_script("document.getElementById('sec-pareto').scrollIntoView();")
    number_of = ("var p = arguments[0]; var tr = p.closest('g.trace').__data__[0].trace;"
                 "var cd = tr.customdata; return Number(cd[p.__data__.i]);")
    points = chrome.find_elements("css selector", "#fig-pareto .scatterlayer .trace .points path.point")
    target, n = next((p, chrome.execute_script(number_of, p)) for p in points
                     if not default.startswith(f"trial {chrome.execute_script(number_of, p)} "))
    ActionChains(chrome).move_to_element(target).pause(0.3).click().perform()
    _wait(chrome, lambda d: d.execute_script(
        "return document.getElementById('detail-title').textContent;").startswith(f"trial {n} "),
        15, f"trial {n}'s detail after a click on its point")
    assert _errors(chrome) == []
