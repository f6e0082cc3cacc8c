"""Data shaping of the dashboards: hand-made studies with values worked out by hand."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest

from hadanas.dashboards import (
    StudyRecords,
    TrialRecord,
    cell_graph,
    compare_data,
    export_command,
    family_data,
    hypervolume_data,
    parallel_data,
    pareto_data,
    records_version,
    reference_point,
    spec_ops,
    spec_summary,
    trial_detail,
)
from hadanas.exceptions import ConfigError
from hadanas.search import hypervolume, pareto_mask, to_minimization

OBJ = ["accuracy", "flops"]
DIRS = ["maximize", "minimize"]
FAM = {"conv": "conventional", "sum": "conventional", "se": "gating", "film": "fusion",
       "star": "higher_order", "aft": "pairwise"}


def spec(*nodes: tuple[list[tuple[int, str]], str], stages: tuple[int, ...] = (8, 16),
         cells: int = 1) -> dict[str, Any]:
    return {"schema": 1, "inputs": ["image"], "input_fusion": None, "stages": list(stages),
            "cells_per_stage": cells,
            "cell": [{"combine": c, "edges": [{"src": s, "op": o} for s, o in edges]}
                     for edges, c in nodes]}


def trial(number: int, values: tuple[float, ...] | None, state: str = "COMPLETE",
          **attrs: Any) -> TrialRecord:
    if state == "COMPLETE":
        attrs.setdefault("status", "trained")
    return TrialRecord(number, number + 100, state, values, attrs)


def study(trials: list[TrialRecord], name: str = "s", objectives: list[str] = OBJ,
          directions: list[str] = DIRS) -> StudyRecords:
    return StudyRecords(name, list(directions), list(objectives), {"objectives": list(objectives)},
                        trials)


# --- Pareto ----------------------------------------------------------------------------
def test_pareto_data_front_infeasible_failed_running() -> None:
    r = study([
        trial(0, (0.9, 100.0), summary="w8/16 x1 | n1=conv(0) n2=se(1)"),
        trial(1, (0.8, 50.0)),
        trial(2, (0.7, 80.0)),  # dominated by 1
        trial(3, (0.95, 10.0), status="infeasible"),  # would dominate all, never trained
        trial(4, None, "FAIL", flops=30, params=7, fail_reason="non-finite loss"),
        trial(5, None, "RUNNING"),
        trial(6, (0.9, 100.0), status="duplicate"),  # a twin of a front point: the front lists it once
        trial(7, (float("nan"), 5.0)),  # non-finite: not plotted
        trial(8, None, "FAIL"),  # nothing known: counted, not plotted
    ])
    d = pareto_data(r)
    assert d.numbers == [0, 1, 2, 3, 6]
    assert d.on_front.tolist() == [True, True, False, False, False]
    assert d.status == ["trained", "trained", "trained", "infeasible", "duplicate"]
    assert d.n_failed == 2 and d.n_running == 1
    assert d.failed_numbers == [4]
    assert np.isnan(d.failed_values[0, 0]) and d.failed_values[0, 1] == 30.0
    assert "failed: non-finite loss" in d.failed_hover[0] and "params: 7" in d.failed_hover[0]
    # hover: trial number, objectives, costs that are not objectives, and the spec by node
    assert d.hover[0].split("<br>")[:3] == ["<b>trial 0</b> (trained)", "accuracy: 0.9000",
                                            "flops: 100"]
    assert d.hover[0].endswith("w8/16 x1<br>n1=conv(0)<br>n2=se(1)")


def test_pareto_hover_escapes_html_and_falls_back_to_the_spec() -> None:
    s = spec(([(0, "conv")], "sum"))
    d = pareto_data(study([trial(0, (0.5, 1.0), summary="w8 | n1=<img src=x onerror=alert(1)>"),
                           trial(1, (0.4, 2.0), spec=s)]))
    assert "<img" not in d.hover[0] and "&lt;img" in d.hover[0]
    assert d.hover[1].endswith("w8/16 x1<br>n1=conv(0)")


def test_pareto_data_minimise_both_and_three_objectives() -> None:
    r = study([trial(0, (1.0, 5.0, 3.0)), trial(1, (2.0, 4.0, 3.0)), trial(2, (2.0, 5.0, 3.0)),
               trial(3, (0.5, 9.0, 9.0))],
              objectives=["latency", "flops", "params"], directions=["minimize"] * 3)
    d = pareto_data(r)
    assert d.on_front.tolist() == [True, True, False, True]


# --- reference point and hypervolume -----------------------------------------------------
def test_reference_point() -> None:
    v = np.array([[0.5, 100.0], [0.9, 300.0]])
    assert reference_point(v, DIRS, OBJ) == [0.0, 320.0]  # accuracy 0; worst + 10 % of range
    assert reference_point(v[:1], DIRS, OBJ) == [0.0, 110.0]  # one value: + 10 % of it
    assert reference_point(np.zeros((1, 2)), DIRS, OBJ) == [0.0, 1.0]
    assert reference_point(np.array([[2.0], [4.0]]), ["maximize"], ["score"]) == [1.8]
    assert reference_point(np.empty((0, 2)), DIRS, OBJ) == [0.0, 0.0]


def test_hypervolume_over_trials_by_hand() -> None:
    r = study([trial(0, (0.5, 100.0)), trial(1, (0.8, 150.0)), trial(2, (0.4, 120.0)),
               trial(3, (0.99, 10.0), status="infeasible"), trial(4, (0.9, 50.0)),
               trial(5, (0.3, 250.0))])  # outside the reference box
    d = hypervolume_data(r, reference=[0.0, 200.0])
    assert d.numbers.tolist() == [0, 1, 2, 4, 5]
    # [0,0.5]x[100,200] = 50; + [0,0.8]x[150,200] -> 65; 2 dominated; 4 dominates 0 and 1
    assert d.hypervolume.tolist() == pytest.approx([50.0, 65.0, 65.0, 135.0, 135.0])
    assert d.front_size.tolist() == [1, 2, 2, 1, 1]
    assert d.reference == [0.0, 200.0]
    with pytest.raises(ConfigError, match="must have 2 entries"):
        hypervolume_data(r, reference=[1.0])


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_over_trials_matches_brute_force(m: int) -> None:
    rng = np.random.default_rng(m)
    vals = rng.random((60, m))
    vals[::7] = vals[3]  # duplicates
    vals[5, 0] = 1.5  # outside the box
    r = study([trial(i, tuple(v)) for i, v in enumerate(vals)], objectives=[f"f{k}" for k in range(m)],
              directions=["minimize"] * m)
    ref = [1.1] * m
    d = hypervolume_data(r, reference=ref)
    for i in range(len(vals)):
        prefix = vals[: i + 1]
        assert d.hypervolume[i] == pytest.approx(hypervolume(prefix, ref), rel=1e-12, abs=1e-12)
        inside = prefix[np.all(prefix < ref, axis=1)]
        uniq = np.unique(inside[pareto_mask(inside)], axis=0) if len(inside) else inside
        assert d.front_size[i] == len(uniq)


def test_hypervolume_default_reference_is_stated() -> None:
    d = hypervolume_data(study([trial(0, (0.5, 100.0)), trial(1, (0.8, 300.0))]))
    assert d.reference == [0.0, 320.0]
    assert d.hypervolume[-1] == pytest.approx(0.5 * 220 + 0.3 * 20)


# --- operator families -------------------------------------------------------------------
def test_family_data_shares_by_hand() -> None:
    a = spec(([(0, "conv"), (0, "se")], "film"))  # conventional, gating, fusion
    b = spec(([(0, "conv")], "sum"))  # one edge: its combine is never built
    c = spec(([(0, "star"), (0, "mystery")], "sum"))  # higher_order, unknown, conventional
    r = study([trial(0, (0.9, 1.0), spec=a), trial(1, (0.5, 2.0), spec=b),
               trial(2, None, "FAIL", spec=c), trial(3, None, "RUNNING")])
    d = family_data(r, front_numbers=[0], families=FAM)
    assert d.n_all == 3 and d.n_front == 1
    assert d.families == ["conventional", "higher_order", "gating", "fusion", "unknown"]
    assert d.share_all.tolist() == pytest.approx([3 / 7, 1 / 7, 1 / 7, 1 / 7, 1 / 7])
    assert d.share_front.tolist() == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3, 0])
    assert d.trials_all.tolist() == pytest.approx([1, 1 / 3, 1 / 3, 1 / 3, 1 / 3])
    assert d.trials_front.tolist() == pytest.approx([1, 0, 1, 1, 0])
    assert d.ops == ["conv", "film", "se", "mystery", "star", "sum"]
    assert d.op_family == ["conventional", "fusion", "gating", "unknown", "higher_order",
                           "conventional"]
    assert d.op_trials_all.tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3])
    assert d.op_trials_front.tolist() == pytest.approx([1, 1, 1, 0, 0, 0])


def test_family_data_uses_the_registry_by_default() -> None:
    s = spec(([(0, "conv_3x3"), (0, "swiglu")], "film"))
    d = family_data(study([trial(0, (0.9, 1.0), spec=s)]), front_numbers=[0])
    assert dict(zip(d.ops, d.op_family)) == {"conv_3x3": "conventional", "swiglu": "gating",
                                             "film": "fusion"}


# --- parallel coordinates ----------------------------------------------------------------
def test_parallel_data_dimensions() -> None:
    s0 = spec(([(0, "conv"), (0, "se")], "film"), ([(1, "aft")], "sum"), stages=(8, 16), cells=1)
    s1 = spec(([(0, "se"), (0, "se")], "sum"), ([(1, "conv")], "sum"), stages=(16, 32), cells=2)
    s2 = spec(([(0, "conv"), (0, "aft")], "film"), ([(0, "star")], "sum"), stages=(8, 16), cells=2)
    r = study([trial(0, (0.9, 10.0), spec=s0), trial(1, (0.5, 20.0), spec=s1),
               trial(2, (0.95, 30.0), spec=s2)])
    d = parallel_data(r, families=FAM)
    labels = [x.label for x in d.dims]
    # node 2 always has one edge: no combine axis for it
    assert labels == ["accuracy", "flops", "width", "cells/stage", "n1 combine", "Hadamard ops",
                      "main edge family"]
    dim = {x.label: x for x in d.dims}
    assert dim["width"].values.tolist() == [8, 16, 8]
    assert dim["cells/stage"].values.tolist() == [1, 2, 2]
    assert dim["n1 combine"].ticktext == ["film", "sum"]
    assert dim["n1 combine"].values.tolist() == [0, 1, 0]
    # Hadamard slots: s0 se, film, aft = 3; s1 se, se = 2; s2 film, aft, star = 3
    assert dim["Hadamard ops"].values.tolist() == [3, 2, 3]
    # main edge family: s0 conv/se/aft tie -> conventional first in registry order;
    # s1 se,se,conv -> gating; s2 conv, aft, star tie -> conventional
    fam = dim["main edge family"]
    assert [fam.ticktext[int(v)] for v in fam.values] == ["conventional", "gating", "conventional"]
    assert d.on_front.tolist() == [True, False, True]


# --- specs -------------------------------------------------------------------------------
def test_spec_ops_and_summary_match_archspec_on_every_space() -> None:
    from hadanas.spaces import ArchSpec, get_space, list_spaces

    for name in list_spaces():
        sp = get_space(name)
        for seed in range(8):
            a = sp.sample(seed)
            d = json.loads(a.to_json())
            assert spec_ops(d) == a.ops(), name
            assert spec_summary(d) == a.summary(), name
            assert ArchSpec.from_dict(d) == a


def test_cell_graph_layout_labels_and_families() -> None:
    s = spec(([(0, "conv"), (0, "conv")], "film"), ([(1, "se")], "sum"), ([(0, "star"), (1, "aft")], "sum"))
    s["cell"][1]["edges"][0]["knobs"] = {"reduction": 4}
    g = cell_graph(s, FAM)
    assert g.node_x == [0, 1, 2, 3, 4] and g.node_y == [0] * 5
    assert g.node_label == ["input", "n1<br>film", "n2", "n3<br>sum", "output"]
    assert g.node_family == ["", "fusion", "", "conventional", ""]
    ops = [e for e in g.edges if e.op]
    assert [(e.src, e.dst, e.label, e.family) for e in ops] == [
        (0, 1, "conv", "conventional"), (0, 1, "conv", "conventional"),
        (1, 2, "se(reduction=4)", "gating"), (0, 3, "star", "higher_order"), (1, 3, "aft", "pairwise")]
    # the two parallel edges 0 -> 1 bend to opposite sides, so they never overlap
    assert ops[0].label_y > 0 > ops[1].label_y
    assert max(ops[0].ys) > 0 and min(ops[1].ys) < 0
    for e in g.edges:  # every curve starts and ends on its nodes
        assert (e.xs[0], e.ys[0]) == (e.src, 0) and e.xs[-1] == pytest.approx(e.dst)
        assert e.ys[-1] == pytest.approx(0, abs=1e-12)
    loose = [(e.src, e.dst) for e in g.edges if not e.op]
    assert loose == [(2, 4), (3, 4)]  # node 1 is read by nodes 2 and 3; 2 and 3 are loose ends
    assert "stages 8/16" in g.head


def test_trial_detail_and_export_command() -> None:
    s = spec(([(0, "conv")], "sum"))
    t = trial(7, (0.91, 1234.0), spec=s, params=99, epochs=3, history=[0.5, 0.91], device="cpu")
    d = trial_detail(t, OBJ, "my study", "sqlite:///runs/h.db", on_front=True, families=FAM)
    m = dict(d.metrics)
    assert m["state"] == "trained, on the Pareto front"
    assert m["accuracy"] == "0.9100" and m["flops"] == "1.23k" and m["params"] == "99"
    assert m["val accuracy per epoch"] == "0.5000 0.9100"
    assert json.loads(d.spec_json) == s
    assert d.export_command == ("hadanas export --storage sqlite:///runs/h.db --study 'my study' "
                                "--trial 7 --out export-7")
    assert d.graph is not None and d.graph.node_label[-1] == "output"
    infeasible = trial_detail(trial(8, (0.0, 9.0), spec=s, status="infeasible"), OBJ, "s")
    assert infeasible.export_command == "" and infeasible.title == "trial 8 (infeasible)"
    failed = trial_detail(trial(9, None, "FAIL", fail_reason="boom"), OBJ, "s")
    assert failed.graph is None and dict(failed.metrics)["fail reason"] == "boom"


def test_export_command_default_storage_and_password() -> None:
    assert export_command("s", 3) == "hadanas export --study s --trial 3 --out export-3"
    assert export_command("s", 3, "sqlite:///hadanas.db") == export_command("s", 3)
    assert "--storage 'postgresql+psycopg://u:***@h/db'" in export_command(
        "s", 3, "postgresql+psycopg://u:secret@h/db")


# --- ablation ----------------------------------------------------------------------------
def test_compare_data_common_reference_and_fronts() -> None:
    a = study([trial(0, (0.5, 100.0)), trial(1, (0.8, 200.0)), trial(2, (0.4, 150.0))], name="full")
    b = study([trial(0, (0.6, 300.0)), trial(1, (0.1, 10.0), status="infeasible")],
              name="conventional")
    d = compare_data([a, b])
    assert d.studies == ["full", "conventional"]
    assert d.reference == [0.0, 320.0]  # over both studies' feasible trials
    assert [f.tolist() for f in d.fronts] == [[[0.5, 100.0], [0.8, 200.0]], [[0.6, 300.0]]]
    assert d.front_numbers == [[0, 1], [0]]
    assert d.hypervolume == pytest.approx([0.5 * 220 + 0.3 * 120, 0.6 * 20])
    assert d.n_complete == [3, 1]
    other = study([trial(0, (0.5, 1.0))], name="lat", objectives=["accuracy", "latency"])
    with pytest.raises(ConfigError, match="'lat' optimises accuracy, latency"):
        compare_data([a, other])


def test_records_version_changes_with_any_state_change() -> None:
    base = [trial(0, (0.5, 1.0)), trial(1, None, "RUNNING")]
    v0 = records_version([study(base)])
    done = [base[0], trial(1, (0.6, 2.0))]
    assert records_version([study(done)]) != v0
    assert records_version([study(base + [trial(2, None, "RUNNING")])]) != v0
    assert records_version([study(list(base))]) == v0


def test_figures_draw_every_point_once() -> None:
    from hadanas.dashboards import pareto_figure

    r = study([trial(0, (0.9, 100.0)), trial(1, (0.8, 50.0)), trial(2, (0.7, 80.0)),
               trial(3, (0.1, 10.0), status="infeasible"), trial(4, None, "FAIL", flops=30)])
    fig = pareto_figure(pareto_data(r))
    markers = {t.name: list(t.customdata) for t in fig.data if "markers" in (t.mode or "")}
    assert markers == {"front (2)": [0, 1], "dominated (1)": [2], "infeasible (1)": [3],
                       "failed, no accuracy (1)": [4]}
    line = [t for t in fig.data if t.mode == "lines"][0]
    assert list(line.x) == [50.0, 100.0] and line.line.shape == "hv"
    assert fig.layout.yaxis2.overlaying == "y"  # failed trials sit on the bottom edge
    three = study([trial(i, (float(i), 1.0 / (i + 1), 2.0)) for i in range(4)],
                  objectives=["accuracy", "flops", "params"], directions=["maximize", "minimize", "minimize"])
    assert {t.type for t in pareto_figure(pareto_data(three)).data} == {"scatter3d"}
    four = study([trial(i, (float(i), 1.0, 2.0, 3.0)) for i in range(4)],
                 objectives=["accuracy", "flops", "params", "latency"],
                 directions=["maximize", "minimize", "minimize", "minimize"])
    assert [t.type for t in pareto_figure(pareto_data(four)).data] == ["splom"]


def test_front_shaping_is_consistent_with_brute_force() -> None:
    rng = np.random.default_rng(0)
    vals = np.round(rng.random((300, 2)), 2)  # many ties
    r = study([trial(i, tuple(v)) for i, v in enumerate(vals)])
    d = pareto_data(r)
    p = to_minimization(vals, DIRS)
    brute = [not any(np.all(q <= x) and np.any(q < x) for q in p) for x in p]
    assert d.on_front.tolist() == brute
    assert not math.isnan(float(d.values.sum()))
    assert all(a <= b for a, b in itertools.pairwise(d.numbers))
