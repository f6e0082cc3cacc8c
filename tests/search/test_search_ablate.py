"""``hadanas ablate``: a tiny real ablation (2 spaces, 1 seed, 2 trials, 1 epoch on digits)
through the command line, its studies, report and summary; a rerun skips it; bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hadanas.cli import main
from hadanas.search import hypervolume, open_storage
from hadanas.search._ablate import ablation_spaces, ablation_study_name
from hadanas.spaces import HADAMARD_FAMILIES, get_space


@pytest.fixture(scope="module")
def tiny_ablation(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("ablate")
    url = f"sqlite:///{d / 'ablate.db'}"
    argv = ["ablate", "--dataset", "digits", "--spaces", "full,conventional", "--seeds", "1",
            "--trials", "2", "--epochs", "1", "--storage", url, "--out", str(d / "out")]
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    return {"rc": rc, "out": buf.getvalue(), "dir": d, "url": url, "argv": argv}


def test_ablation_runs_one_study_per_space_and_seed(tiny_ablation: dict) -> None:
    assert tiny_ablation["rc"] == 0, tiny_ablation["out"]
    storage = open_storage(tiny_ablation["url"], create=False)
    names = sorted(s.study_name for s in storage.get_all_studies())
    assert names == ["ablate-digits-conventional-s0", "ablate-digits-full-s0"]
    for space in ("full", "conventional"):
        st = optuna.load_study(study_name=f"ablate-digits-{space}-s0", storage=storage)
        done = st.get_trials(states=(TrialState.COMPLETE,))
        assert len(done) == 2
        assert st.user_attrs["space"] == space and st.user_attrs["config"]["epochs"] == 1
        allowed = set(get_space(space).edge_ops) | set(get_space(space).combines)
        for t in done:
            spec = t.user_attrs["spec"]
            assert {e["op"] for n in spec["cell"] for e in n["edges"]} <= allowed


def test_ablation_table_and_summary(tiny_ablation: dict) -> None:
    out = tiny_ablation["out"]
    assert "hypervolume (mean ± std)" in out and "reference point (1, 1.1)" in out
    lines = out.splitlines()
    assert any(ln.startswith("full ") for ln in lines)
    assert any(ln.startswith("conventional ") for ln in lines)
    summary = json.loads((tiny_ablation["dir"] / "out" / "ablation.json").read_text())
    assert summary["spaces"] == ["full", "conventional"] and summary["seeds"] == [0]
    scale = summary["normalisation"]["scale"]
    assert scale[0] is None and scale[1] > 0
    # The hypervolume printed is the one of the normalised stored values.
    storage = open_storage(tiny_ablation["url"], create=False)
    every = []
    for row in summary["spaces_summary"]:
        st = optuna.load_study(study_name=f"ablate-digits-{row['space']}-s0", storage=storage)
        v = np.array([t.values for t in st.get_trials(states=(TrialState.COMPLETE,))])
        every.append(v)
        pts = np.column_stack([1 - v[:, 0], v[:, 1] / scale[1]])
        assert row["hypervolume"][0] == pytest.approx(hypervolume(pts, [1.0, 1.1]))
        assert 0 < row["hypervolume_mean"] < 1.1 and row["hypervolume_std"] is None  # one seed: no spread
        assert f"{row['hypervolume_mean']:.4f}" in out
    assert scale[1] == max(float(v[:, 1].max()) for v in every)


def test_family_shares_sum_to_one(tiny_ablation: dict) -> None:
    summary = json.loads((tiny_ablation["dir"] / "out" / "ablation.json").read_text())
    fam = summary["family_share"]
    assert fam["space"] == "full" and fam["front_architectures"] >= 1
    assert math.isclose(sum(fam["front"].values()), 1.0, abs_tol=1e-9)
    assert math.isclose(sum(fam["all_trials"].values()), 1.0, abs_tol=1e-9)
    assert all(0.0 <= v <= 1.0 for v in fam["front_architectures_using"].values())
    assert "operator families on the 'full' front(s)" in tiny_ablation["out"]


def test_overlaid_fronts_dashboard_is_written(tiny_ablation: dict) -> None:
    html = (tiny_ablation["dir"] / "out" / "ablation.html").read_text(encoding="utf-8")
    assert "ablate-digits-full-s0" in html and "ablate-digits-conventional-s0" in html
    assert "Ablation: Pareto fronts overlaid" in html


def test_rerun_skips_complete_studies(tiny_ablation: dict, capsys: pytest.CaptureFixture[str]) -> None:
    storage = open_storage(tiny_ablation["url"], create=False)
    def counts() -> dict[str, int]:
        return {s.study_name: storage.get_n_trials(s._study_id) for s in storage.get_all_studies()}

    before = counts()
    assert main(tiny_ablation["argv"]) == 0
    out = capsys.readouterr().out
    assert out.count(": already complete (2 trials), skipped") == 2 and "2 studies already complete" in out
    assert counts() == before


def test_a_stored_study_with_another_budget_is_refused(tiny_ablation: dict,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    argv = list(tiny_ablation["argv"])
    argv[argv.index("--epochs") + 1] = "2"
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "epochs=1" in err


@pytest.mark.parametrize("yaml, stored", [("objectives: [accuracy, params]", "['accuracy', 'flops']"),
                                          ("max_flops: 1000", "max_flops=None")])
def test_a_stored_study_with_other_objectives_or_constraints_is_refused(
        tiny_ablation: dict, yaml: str, stored: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = open_storage(tiny_ablation["url"], create=False)
    before = {s.study_name: storage.get_n_trials(s._study_id) for s in storage.get_all_studies()}
    (tmp_path / "c.yaml").write_text(yaml + "\n", encoding="utf-8")
    assert main([*tiny_ablation["argv"], "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and stored in err, err
    assert {s.study_name: storage.get_n_trials(s._study_id) for s in storage.get_all_studies()} == before


def test_summary_json_is_strict_when_numbers_are_missing(tiny_ablation: dict) -> None:
    from hadanas.search._ablate import summarise_ablation

    storage = open_storage(tiny_ablation["url"], create=False)
    studies = {(sp, 0): f"ablate-digits-{sp}-s0" for sp in ("full", "conventional")}
    res = summarise_ablation(storage, "digits", [0], ["full", "conventional"], studies,
                             ["accuracy", "flops"], wall=None)  # wall times unknown: NaN
    text = json.dumps(res.to_dict(), allow_nan=False)
    assert json.loads(text)["spaces_summary"][0]["wall_time_s"] == [None]


def test_default_spaces_and_names() -> None:
    one, two = ablation_spaces(False), ablation_spaces(True)
    assert one[:2] == ["full", "conventional"] and two[:2] == ["fusion", "fusion-conventional"]
    assert len(one) == len(two) == 2 + len(HADAMARD_FAMILIES)
    for name in (*one, *two):
        get_space(name)
    for name in two:
        assert get_space(name).inputs == ("image", "vector")
    assert ablation_study_name("folder:/x y", "full", 3) == "ablate-folder_x_y-full-s3"


@pytest.mark.parametrize("family", HADAMARD_FAMILIES)
def test_fusion_ablation_spaces_drop_their_family(family: str) -> None:
    space = get_space(f"fusion-no-{family.replace('_', '-')}")
    assert family not in space.families()
    assert space.input_fusions and space.fusion_points == get_space("fusion").fusion_points
    assert set(get_space("fusion-conventional").families()) == {"conventional"}


@pytest.mark.parametrize("argv, needle", [
    (["--spaces", "full,nope"], "unknown space 'nope'"),
    (["--spaces", "fusion"], "has inputs ['image']"),
    (["--spaces", ","], "--spaces must name"),
    (["--spaces", "full,full"], "lists a space twice"),
    (["--seeds", "0"], "--seeds must be in 1..100"),
    (["--trials", "0"], "trials"),
    (["--objectives", "flops,params"], "must include accuracy"),
    (["--objectives", "accuracy"], "must include accuracy and at least one cost"),
    (["--seed", "4294967295", "--seeds", "2"], "'seed' must be an integer 0..4294967295"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], needle: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "a.db"
    rc = main(["ablate", "--storage", f"sqlite:///{db}", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not db.exists()


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ablate", "--seeds", "two"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
