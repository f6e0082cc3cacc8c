"""SearchSpace: size (closed form vs brute force), membership, named spaces, NAS-Bench-201."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from hadanas.exceptions import ConfigError
from hadanas.spaces import (
    FAMILIES,
    HADAMARD_FAMILIES,
    ArchSpec,
    Edge,
    Node,
    RandomChooser,
    SearchSpace,
    default_registry,
    get_space,
    list_spaces,
    register_space,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NB201_CSV = REPO_ROOT.parent / "shared" / "nas" / "nb201.csv"


# --- size: closed form vs brute force -----------------------------------------------


class _Replay:
    """A chooser that replays a path of choice indices, then takes choice 0, recording
    how many choices each call offered (one leaf of the decision tree per run)."""

    def __init__(self, path: Sequence[int]) -> None:
        self.path = list(path)
        self.counts: list[int] = []

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        k = len(self.counts)
        self.counts.append(len(choices))
        return list(choices)[self.path[k] if k < len(self.path) else 0]


def _enumerate(space: SearchSpace) -> list[ArchSpec]:
    """Every leaf of ``space.suggest``'s decision tree, by odometer over choice paths."""
    specs, path = [], []
    while True:
        chooser = _Replay(path)
        specs.append(space.suggest(chooser))
        path = path + [0] * (len(chooser.counts) - len(path))
        k = len(path) - 1
        while k >= 0 and path[k] + 1 >= chooser.counts[k]:
            k -= 1
        if k < 0:
            return specs
        path = path[:k] + [path[k] + 1]


TINY_SPACES = {
    "sparse": SearchSpace(
        name="tiny-sparse", edge_ops=("skip", "se"), combines=("sum", "mlb"),
        widths=(8, 16), n_nodes=2, edges_per_node=2,
    ),
    "dense": SearchSpace(
        name="tiny-dense", edge_ops=("zero", "skip", "soft_mask"), cells_per_stage=(1, 2),
        n_nodes=3, dense=True,
    ),
    "two-input": SearchSpace(
        name="tiny-fusion", edge_ops=("skip", "se"), n_nodes=2, edges_per_node=1,
        inputs=("image", "vector"), input_fusions=("film", "mlb"),
    ),
    "two-input-points": SearchSpace(
        name="tiny-fusion-points", edge_ops=("skip", "se"), n_nodes=2, edges_per_node=1,
        inputs=("image", "vector"), input_fusions=("film", "mlb"), fusion_points=("stem", "head"),
    ),
}


@pytest.mark.parametrize("key", list(TINY_SPACES))
def test_size_equals_brute_force_count(key):
    space = TINY_SPACES[key]
    specs = _enumerate(space)
    distinct = {s.fingerprint() for s in specs}
    assert len(distinct) == len(specs), "two choice paths gave the same spec"
    assert space.size() == len(specs)
    assert all(space.check(s) is None for s in specs)


def test_tiny_sizes_by_hand():
    # sparse: 2 widths * node1 (1 src * 3 op variants)^2 * 3 combine variants
    #                  * node2 (2 srcs * 3)^2 * 3 = 2 * 27 * 108
    assert TINY_SPACES["sparse"].size() == 2 * 27 * 108
    # dense: 2 cell counts * 4^1 * 4^2 * 4^3 (zero, skip, soft_mask k=3|5)
    assert TINY_SPACES["dense"].size() == 2 * 4**6
    # two-input: node1 3 * node2 (2 * 3) * 2 fusions (built with default knobs)
    assert TINY_SPACES["two-input"].size() == 3 * 6 * 2
    # ... and fused at the stem or the head
    assert TINY_SPACES["two-input-points"].size() == 3 * 6 * 2 * 2


def test_nb201_size_is_15625():
    assert get_space("nb201").size() == 15625 == 5**6


# --- check ---------------------------------------------------------------------------


@pytest.mark.parametrize("space_name", list_spaces())
def test_check_accepts_samples(space_name):
    space = get_space(space_name)
    for seed in range(10):
        spec = space.sample(seed)
        assert space.check(spec) is None
        assert space.check(ArchSpec.from_dict(spec.to_dict())) is None


def _full_spec(**changes: Any) -> ArchSpec:
    spec = get_space("full").sample(3)
    return dataclasses.replace(spec, **changes)


def _with_node(spec: ArchSpec, i: int, node: Node) -> ArchSpec:
    cell = list(spec.cell)
    cell[i] = node
    return dataclasses.replace(spec, cell=tuple(cell))


OUTSIDE = [
    ("op", "conventional", lambda s: _with_node(s, 0, Node((Edge(0, "se", (("reduction", 4),)),
                                                              Edge(0, "skip")), "sum")),
     "op 'se' is not in space 'conventional'"),
    ("combine", "no-fusion", lambda s: _with_node(s, 0, Node((Edge(0, "skip"), Edge(0, "skip")),
                                                             "film")),
     "combine 'film' is not in space 'no-fusion'"),
    ("width", "full", lambda s: dataclasses.replace(s, stages=(12, 24)), "stages [12, 24]"),
    ("not-doubled", "full", lambda s: dataclasses.replace(s, stages=(8, 24)), "doubled"),
    ("cells", "full", lambda s: dataclasses.replace(s, cells_per_stage=3), "cells_per_stage 3"),
    ("nodes", "full", lambda s: dataclasses.replace(s, cell=s.cell[:2]), "2 nodes"),
    ("edges", "full", lambda s: _with_node(s, 0, Node((Edge(0, "skip"),))), "node 1 has 1 edges"),
    ("knob", "full", lambda s: _with_node(s, 0, Node((Edge(0, "se", (("reduction", 16),)),
                                                      Edge(0, "skip")))), "[4, 8]"),
    ("src", "full", lambda s: _with_node(s, 0, Node((Edge(1, "skip"), Edge(0, "skip")))),
     "node 1 reads node 1"),
    ("inputs", "full", lambda s: dataclasses.replace(s, inputs=("image", "vector"),
                                                     input_fusion="film"), "inputs"),
    ("fusion-on-one-input", "full", lambda s: dataclasses.replace(s, input_fusion="film"),
     "input_fusion"),
    ("nb201-in-full", "full", lambda s: get_space("nb201").sample(0), "stages"),
    ("dense-order", "nb201",
     lambda s: _with_node(get_space("nb201").sample(0), 1, Node((Edge(1, "skip"), Edge(0, "skip")))),
     "every earlier node once"),
    ("dense-combine", "nb201",
     lambda s: _with_node(get_space("nb201").sample(0), 1, Node((Edge(0, "skip"), Edge(1, "skip")),
                                                               "concat")),
     "combine must be 'sum'"),
]


@pytest.mark.parametrize("space_name,make,fragment", [c[1:] for c in OUTSIDE],
                         ids=[c[0] for c in OUTSIDE])
def test_check_explains_specs_outside(space_name, make, fragment):
    problem = get_space(space_name).check(make(_full_spec()))
    assert problem is not None and fragment in problem, problem


def test_check_rejects_a_second_spelling_of_a_one_edge_node():
    """A one-edge node's combine is never built, so suggest() always writes 'sum'; a spec
    with another combine there would be the same model under another fingerprint."""
    nb = get_space("nb201")
    spec = nb.sample(0)
    other = _with_node(spec, 0, dataclasses.replace(spec.cell[0], combine="film"))
    assert nb.check(spec) is None
    assert "combine must be 'sum'" in nb.check(other)


# --- named spaces --------------------------------------------------------------------

ABLATIONS = [n for n in list_spaces() if n == "conventional" or n.startswith("no-")]


def _removed(space_name: str) -> set[str]:
    if space_name == "conventional":
        return set(HADAMARD_FAMILIES)
    return {space_name.removeprefix("no-").replace("-", "_")}


def test_every_hadamard_family_has_a_no_space():
    assert {f"no-{f.replace('_', '-')}" for f in HADAMARD_FAMILIES} <= set(ABLATIONS)


@pytest.mark.parametrize("space_name", ABLATIONS)
def test_ablation_spaces_contain_no_removed_family(space_name):
    space, full = get_space(space_name), get_space("full")
    removed = _removed(space_name)
    assert removed <= set(FAMILIES)
    family = lambda op: default_registry.get(op).family  # noqa: E731
    for op in (*space.edge_ops, *space.combines, *space.input_fusions):
        assert family(op) not in removed, op
    for seed in range(30):
        for op in space.sample(seed).ops():
            assert family(op) not in removed, op
    # Exactly the named families go: everything else in 'full' stays.
    assert set(space.families()) == set(full.families()) - removed
    kept = {op for op in full.edge_ops if family(op) not in removed}
    assert set(space.edge_ops) == kept
    assert space.size() < full.size()


def test_every_hadamard_family_has_an_op_in_full():
    full = get_space("full")
    families = {default_registry.get(op).family for op in (*full.edge_ops, *full.combines)}
    for fam in HADAMARD_FAMILIES:
        assert fam in families, fam
    assert full.families() == list(FAMILIES)


def test_full_offers_every_built_in_op():
    full = get_space("full")
    offered = set(full.edge_ops) | set(full.combines)
    built_in = {i.name for i in default_registry.infos()
                if i.factory.__module__.startswith("hadanas.spaces.ops")}
    assert built_in - offered == set()


def test_fusion_space_takes_two_inputs():
    space = get_space("fusion")
    spec = space.sample(0)
    assert spec.inputs == ("image", "vector") and spec.input_fusion in space.input_fusions


def test_unknown_space_lists_close_matches():
    with pytest.raises(ConfigError, match="Did you mean 'full'"):
        get_space("fulll")


def test_register_space_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_space("full", lambda: get_space("full"))


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"edge_ops": ("film",)}, "must take one input"),
        ({"edge_ops": ("skip",), "combines": ("se",)}, "must take two inputs"),
        ({"edge_ops": ()}, "at least one edge op"),
        ({"edge_ops": ("skip",), "inputs": ("image", "vector")}, "no input_fusions"),
    ],
)
def test_space_constructor_rejects_bad_choices(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        SearchSpace(name="bad", **kwargs)


# --- sampling ------------------------------------------------------------------------


def test_sample_is_deterministic_per_seed():
    space = get_space("full")
    assert space.sample(7) == space.sample(7)
    assert len({space.sample(s) for s in range(10)}) > 1
    chooser = RandomChooser(1)
    spec = space.suggest(chooser)
    assert chooser.params["width"] == spec.stages[0]


def test_suggest_with_optuna_trials():
    """An Optuna trial is a chooser: param names keep one distribution each across trials
    (Optuna raises on a name whose choices change), and every spec is in the space."""
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = get_space("full")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(15):
        trial = study.ask()
        spec = space.suggest(trial)
        assert space.check(spec) is None
        study.tell(trial, 0.0)
    assert len(study.trials) == 15


# --- NAS-Bench-201 -------------------------------------------------------------------


def _nb201_rows(n: int) -> list[str]:
    if not NB201_CSV.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV} (../shared/nas/nb201.csv "
                    "relative to the repository root)")
    with NB201_CSV.open(newline="") as f:
        reader = csv.DictReader(f)
        return [row["arch_str"] for _, row in zip(range(n), reader)]


def test_nb201_round_trip_of_table_rows():
    space = get_space("nb201")
    rows = _nb201_rows(200)
    assert len(rows) == 200
    for arch_str in rows:
        spec = space.from_nb201(arch_str)
        assert space.check(spec) is None
        assert space.to_nb201(spec) == arch_str
        assert [len(n.edges) for n in spec.cell] == [1, 2, 3]


def test_nb201_round_trip_of_samples():
    space = get_space("nb201")
    for seed in range(20):
        spec = space.sample(seed)
        assert space.from_nb201(space.to_nb201(spec)) == spec


@pytest.mark.parametrize(
    "arch_str",
    [
        "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~0|+|none~0|none~1|",
        "|none~x|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~\u00b2|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
    ],
    ids=["op", "nodes", "src", "superscript", "order"],
)
def test_from_nb201_rejects_malformed_strings(arch_str):
    with pytest.raises(ConfigError):
        get_space("nb201").from_nb201(arch_str)


def test_to_nb201_rejects_ops_outside_nb201():
    spec = get_space("full").sample(0)
    with pytest.raises(ConfigError, match="no NAS-Bench-201 name"):
        get_space("nb201").to_nb201(spec)


# --- fusion point -----------------------------------------------------------------------


def test_fusion_space_searches_the_fusion_point():
    space = get_space("fusion")
    assert space.fusion_points == ("stem", "head")
    points = {space.sample(seed).fusion_point for seed in range(20)}
    assert points == {"stem", "head"}
    stem_only = dataclasses.replace(space, fusion_points=("stem",))
    assert space.size() == 2 * stem_only.size()
    assert all(stem_only.sample(s).fusion_point == "stem" for s in range(5))
    head = dataclasses.replace(space.sample(0), fusion_point="head")
    assert space.check(head) is None
    assert "fusion_point 'head' is not in space" in (stem_only.check(head) or "")
    # A one-input space accepts only the default.
    full = get_space("full").sample(0)
    assert "fusion_point" in (get_space("full").check(dataclasses.replace(full, fusion_point="head")) or "")


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"inputs": ("image", "vector"), "input_fusions": ("film",), "fusion_points": ("tail",)},
         "fusion_points must be distinct values of stem, head"),
        ({"inputs": ("image", "vector"), "input_fusions": ("film",), "fusion_points": ()},
         "fusion_points"),
        ({"inputs": ("image", "vector"), "input_fusions": ("film",),
          "fusion_points": ("head", "head")}, "distinct"),
        ({"fusion_points": ("head",)}, "one input"),
    ],
    ids=["unknown", "empty", "twice", "one-input"],
)
def test_space_rejects_bad_fusion_points(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        SearchSpace(name="bad", edge_ops=("skip",), **kwargs)
