"""`hadanas pareto` on a study with no front says so in one line; the README's YAML config
reference covers every SearchConfig key and its example loads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hadanas.cli import main
from hadanas.config import SearchConfig, load_yaml_config

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture()
def store(tmp_path: Path) -> str:
    from hadanas.search import open_storage

    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = open_storage(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("empty", "unfinished", "infeasible"):
        s = optuna.create_study(storage=storage, study_name=name, directions=["maximize", "minimize"])
        s.set_user_attr("objectives", ["accuracy", "flops"])
    s = optuna.load_study(study_name="unfinished", storage=storage)
    s.tell(s.ask(), state=TrialState.FAIL)
    s.ask()  # left running
    s = optuna.load_study(study_name="infeasible", storage=storage)
    t = s.ask()
    t.set_user_attr("status", "infeasible")
    s.tell(t, [0.0, 5e9])
    return url


@pytest.mark.parametrize("study, fragment", [
    ("empty", "study 'empty' has no completed trials yet (no trials at all); its Pareto front is empty."),
    ("unfinished", "study 'unfinished' has no completed trials yet (1 failed, 1 running)"),
    ("infeasible", "none of its 1 completed trial(s) is feasible"),
])
def test_pareto_of_a_study_without_a_front_is_one_line(store: str, study: str, fragment: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pareto", "--storage", store, "--study", study]) == 0
    out = capsys.readouterr()
    lines = [ln for ln in out.out.splitlines() if ln.strip()]
    assert len(lines) == 1 and fragment in lines[0], out.out
    assert "-----" not in out.out and out.err == ""
    assert main(["pareto", "--storage", store, "--study", study, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["front"] == []  # scripts still get JSON


def _search_flags() -> set[str]:
    from hadanas.cli import _build

    parser = _build()
    search = next(a for a in parser._subparsers._actions if a.choices)  # type: ignore[union-attr]
    return {o for a in search.choices["search"]._actions for o in a.option_strings if o.startswith("--")}


def test_every_config_key_is_a_flag_or_a_documented_yaml_key() -> None:
    text = README.read_text(encoding="utf-8")
    flags = _search_flags() - {"--help", "--config", "--quiet"}
    keys = set(SearchConfig.keys())
    assert {f[2:].replace("-", "_") for f in flags} <= keys, "a search flag that is not a config key"
    yaml_only = keys - {f[2:].replace("-", "_") for f in flags}
    section = text.split("### YAML config file", 1)[1].split("\n## ", 1)[0]
    undocumented = sorted(k for k in keys - yaml_only if f"`--{k.replace('_', '-')}" not in text)
    undocumented += sorted(k for k in yaml_only if f"| `{k}` |" not in section)
    assert not undocumented, f"config keys missing from the README's tables: {undocumented}"


def test_readme_yaml_example_loads(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"### YAML config file.*?```yaml\n(.*?)```", text, re.S)
    assert block, "the README has no YAML example"
    f = tmp_path / "search.yaml"
    f.write_text(block.group(1), encoding="utf-8")
    c = load_yaml_config(f)
    assert c.trials == 64 and c.objectives == ("accuracy", "flops") and c.early_stopping


def test_names_with_control_characters_stay_on_one_line(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from hypothesis import given
    from hypothesis import strategies as st

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _fuzz import fuzz_settings, one_line, tried

    @fuzz_settings(60)
    @given(st.text(min_size=1, max_size=12), st.sampled_from(["pareto", "dashboard", "export", "search"]))
    def check(name: str, verb: str) -> None:
        tried("CLI: names with any characters")
        argv = {"pareto": ["pareto", "--storage", store, "--study", name],
                "dashboard": ["dashboard", "--storage", store, "--study", name, "--out", "/nonexistent/x.html"],
                "export": ["export", "--storage", store, "--study", name, "--trial", "0", "--out", "/nonexistent"],
                "search": ["search", "--quiet", "--storage", store, "--objectives", name, "--sampler", name]}[verb]
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        if code == 0:  # a study that exists ('empty', ...)
            return
        assert code == 2, out.err
        lines = [ln for ln in out.err.splitlines() if ln.strip()]
        assert len(lines) == 1, out.err
        one_line(lines[0])

    check()


@pytest.mark.parametrize("argv", [["--resume"], ["--dataset", "nosuch"], ["--space", "nosuch"],
                                  ["--space", "fusion"], ["--resume", "--artifacts", "weights/deep"]])
def test_a_search_refused_for_bad_input_leaves_nothing_behind(
        argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--subset", "100", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hadanas: error:") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no store, no folders


def test_a_refused_resume_keeps_a_store_that_holds_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    study = optuna.create_study(storage="sqlite:///hadanas.db", study_name="kept")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    assert main(["search", "--resume", "--study", "other", "--subset", "100"]) == 2
    assert len(optuna.load_study(study_name="kept", storage="sqlite:///hadanas.db").trials) == 1
