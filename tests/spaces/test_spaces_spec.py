"""ArchSpec: JSON round trips, fingerprints, and validation errors that name the field."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from hadanas.exceptions import SpecError
from hadanas.spaces import ArchSpec, get_space, list_spaces

BASE: dict[str, Any] = {
    "schema": 1,
    "inputs": ["image"],
    "input_fusion": None,
    "stages": [8, 16],
    "cells_per_stage": 1,
    "cell": [
        {"combine": "sum", "edges": [{"src": 0, "op": "conv_3x3"}]},
        {
            "combine": "film",
            "edges": [
                {"src": 0, "op": "se", "knobs": {"reduction": 8}},
                {"src": 1, "op": "skip"},
            ],
        },
    ],
}
#: sha256 of BASE's canonical JSON, first 16 hex digits. Stored trials are deduplicated by
#: fingerprint, so a change here silently breaks resuming every existing study.
BASE_FINGERPRINT = "eb7b27fa0b1bb5c5"


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("space_name", list_spaces())
def test_round_trip_of_samples_of_every_named_space(space_name):
    space = get_space(space_name)
    for seed in range(5):
        spec = space.sample(seed)
        d = spec.to_dict()
        # JSON-only: the dict survives json unchanged.
        assert json.loads(json.dumps(d)) == d
        again = ArchSpec.from_dict(d)
        assert again == spec
        assert again.to_dict() == d
        assert ArchSpec.from_json(spec.to_json()) == spec
        assert ArchSpec.from_json(spec.to_json(indent=2)) == spec
        assert again.fingerprint() == spec.fingerprint()


def test_base_round_trip_is_exact():
    spec = ArchSpec.from_dict(BASE)
    assert spec.to_dict() == BASE
    assert spec.cell[1].edges[0].knob_dict() == {"reduction": 8}
    assert spec.ops() == ["conv_3x3", "se", "skip", "film"]
    assert spec.loose_ends() == [2]


def test_spec_is_frozen_and_hashable():
    spec = ArchSpec.from_dict(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.stages = (4, 8)  # type: ignore[misc]
    assert len({spec, ArchSpec.from_dict(copy.deepcopy(BASE))}) == 1


# --- fingerprints --------------------------------------------------------------------


def test_fingerprint_is_stable_across_versions_and_key_order():
    assert ArchSpec.from_dict(BASE).fingerprint() == BASE_FINGERPRINT
    reordered = {k: BASE[k] for k in reversed(list(BASE))}
    reordered["cell"] = [
        {k: node[k] for k in reversed(list(node))} for node in BASE["cell"]
    ]
    assert ArchSpec.from_dict(reordered).fingerprint() == BASE_FINGERPRINT


def _changed(path: Callable[[dict[str, Any]], None]) -> str:
    d = copy.deepcopy(BASE)
    path(d)
    return ArchSpec.from_dict(d).fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["cell"][1]["edges"][0]["knobs"].update(reduction=4),
        lambda d: d["cell"][1].update(combine="sum"),
        lambda d: d["cell"][1]["edges"][1].update(src=0),
        lambda d: d["cell"][0]["edges"][0].update(op="conv_1x1"),
        lambda d: d.update(stages=[8, 32]),
        lambda d: d.update(cells_per_stage=2),
    ],
    ids=["knob", "combine", "src", "op", "width", "cells"],
)
def test_fingerprint_changes_with_any_field(change):
    assert _changed(change) != BASE_FINGERPRINT


def test_fingerprints_of_distinct_samples_are_distinct():
    space = get_space("full")
    specs = {space.sample(seed) for seed in range(40)}
    assert len({s.fingerprint() for s in specs}) == len(specs) > 30


# --- validation ----------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation of BASE: ``path`` like ``cell.1.edges.0.src``."""

    def mutate(d: dict[str, Any]) -> None:
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        target: Any = d
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        *head, last = path.split(".")
        target: Any = d
        for k in head:
            target = target[int(k) if k.isdigit() else k]
        del target[last]

    return mutate


INVALID: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    # unknown ops, with close matches
    ("unknown-op", _set("cell.0.edges.0.op", "conv_3x4"),
     ["'cell[0].edges[0].op'", "unknown op 'conv_3x4'", "Did you mean 'conv_3x3'"]),
    ("unknown-combine", _set("cell.1.combine", "flim"),
     ["'cell[1].combine'", "unknown op 'flim'", "'film'"]),
    ("op-not-string", _set("cell.0.edges.0.op", 3), ["'cell[0].edges[0].op'", "string"]),
    # wrong arity
    ("binary-op-on-edge", _set("cell.0.edges.0.op", "film"),
     ["'cell[0].edges[0].op'", "one-input", "'film' takes 2"]),
    ("unary-op-as-combine", _set("cell.1.combine", "se"),
     ["'cell[1].combine'", "two-input", "'se' takes 1"]),
    # sources: dangling, forward, cyclic, negative
    ("dangling-src", _set("cell.1.edges.1.src", 7), ["'cell[1].edges[1].src'", "0..1", "got 7"]),
    ("forward-src", _set("cell.0.edges.0.src", 2), ["'cell[0].edges[0].src'", "0..0", "forward"]),
    ("self-cycle-src", _set("cell.1.edges.1.src", 2), ["'cell[1].edges[1].src'", "cycles"]),
    ("negative-src", _set("cell.1.edges.0.src", -1), ["'cell[1].edges[0].src'", "got -1"]),
    # wrong types
    ("src-string", _set("cell.0.edges.0.src", "0"), ["'cell[0].edges[0].src'", "got '0'"]),
    ("src-bool", _set("cell.0.edges.0.src", False), ["'cell[0].edges[0].src'", "got False"]),
    ("src-float", _set("cell.0.edges.0.src", 0.0), ["'cell[0].edges[0].src'", "got 0.0"]),
    ("cells-string", _set("cells_per_stage", "2"), ["'cells_per_stage'", "got '2'"]),
    ("cells-bool", _set("cells_per_stage", True), ["'cells_per_stage'", "got True"]),
    ("stages-string", _set("stages", ["8", 16]), ["'stages'", "['8', 16]"]),
    ("stages-bool", _set("stages", [True, 16]), ["'stages'", "[True, 16]"]),
    ("stages-not-list", _set("stages", 8), ["'stages'", "got 8"]),
    ("schema-string", _set("schema", "1"), ["'schema'", "'1'"]),
    ("schema-future", _set("schema", 2), ["'schema'", "must be 1", "got 2"]),
    ("knobs-not-object", _set("cell.1.edges.0.knobs", [8]), ["'cell[1].edges[0].knobs'", "object"]),
    ("knob-bool", _set("cell.1.edges.0.knobs", {"reduction": True}),
     ["'cell[1].edges[0].knobs'", "'reduction'", "[4, 8]", "True"]),
    ("knob-value", _set("cell.1.edges.0.knobs", {"reduction": 5}),
     ["'cell[1].edges[0].knobs'", "[4, 8]", "got 5"]),
    ("knob-name", _set("cell.1.edges.0.knobs", {"reductoin": 8}),
     ["'cell[1].edges[0].knobs'", "no knob 'reductoin'", "Did you mean 'reduction'"]),
    ("knob-on-knobless-op", _set("cell.1.edges.1.knobs", {"kernel": 3}),
     ["'cell[1].edges[1].knobs'", "'skip' has no knob 'kernel'", "valid knobs: none"]),
    # unknown fields
    ("unknown-top-field", _set("stage", [8]),
     ["unknown field 'stage'", "Did you mean 'stages'"]),
    ("unknown-node-key", _set("cell.0.edge", []), ["'cell[0]'", "unknown key 'edge'"]),
    ("unknown-edge-key", _set("cell.0.edges.0.kernel", 3),
     ["'cell[0].edges[0]'", "unknown key 'kernel'"]),
    # empty and oversized
    ("empty-cell", _set("cell", []), ["'cell'", "1 to 32 nodes", "got []"]),
    ("missing-cell", _delete("cell"), ["'cell'", "got None"]),
    ("empty-edges", _set("cell.0.edges", []), ["'cell[0].edges'", "non-empty", "got []"]),
    ("too-many-edges", _set("cell.0.edges", [{"src": 0, "op": "skip"}] * 33),
     ["'cell[0].edges'", "at most 32"]),
    ("node-not-object", _set("cell.0", "conv_3x3"), ["'cell[0]'", "object"]),
    ("edge-not-object", _set("cell.0.edges.0", "conv_3x3"), ["'cell[0].edges[0]'", "object"]),
    ("huge-width", _set("stages", [8, 10**9]), ["'stages'", "1..4096", "1000000000"]),
    ("zero-width", _set("stages", [0, 16]), ["'stages'", "1..4096"]),
    ("too-many-stages", _set("stages", [8] * 9), ["'stages'", "1 to 8"]),
    ("huge-cells", _set("cells_per_stage", 10**6), ["'cells_per_stage'", "1..64"]),
    ("too-many-nodes", _set("cell", [{"edges": [{"src": 0, "op": "skip"}]}] * 33),
     ["'cell'", "1 to 32 nodes"]),
    # inputs and fusion
    ("inputs-twice-image", _set("inputs", ["image", "image"]), ["'inputs'", "['image', 'image']"]),
    ("inputs-vector-only", _set("inputs", ["vector"]), ["'inputs'"]),
    ("inputs-string", _set("inputs", "image"), ["'inputs'", "'image'"]),
    ("fusion-missing", _set("inputs", ["image", "vector"]), ["'input_fusion'", "string"]),
    ("fusion-one-input", _set("input_fusion", "film"), ["'input_fusion'", "null"]),
]


@pytest.mark.parametrize("mutate,fragments", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_from_dict_rejects_with_message_naming_the_field(mutate, fragments):
    d = copy.deepcopy(BASE)
    mutate(d)
    with pytest.raises(SpecError) as info:
        ArchSpec.from_dict(d)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_unknown_op_message_lists_valid_ops_of_the_right_arity():
    d = copy.deepcopy(BASE)
    d["cell"][0]["edges"][0]["op"] = "sepconv_3x3"
    with pytest.raises(SpecError, match="Did you mean 'sep_conv_3x3'") as info:
        ArchSpec.from_dict(d)
    valid = str(info.value).split("Valid ops:")[1]
    assert "sep_conv_5x5" in valid and "film" not in valid


@pytest.mark.parametrize("data", [[], "spec", None, 3])
def test_from_dict_rejects_non_objects(data):
    with pytest.raises(SpecError, match="JSON object"):
        ArchSpec.from_dict(data)


@pytest.mark.parametrize("text", ["{", "", "[1,", b"\xff\xfe"])
def test_from_json_rejects_invalid_json(text):
    with pytest.raises(SpecError, match="not valid JSON"):
        ArchSpec.from_json(text)


def test_two_input_spec_round_trips():
    d = copy.deepcopy(BASE)
    d["inputs"] = ["image", "vector"]
    d["input_fusion"] = "mlb"
    spec = ArchSpec.from_dict(d)
    assert spec.input_fusion == "mlb" and spec.to_dict() == d
    assert "mlb" in spec.ops()
    assert "fuse=mlb" in spec.summary()


# --- fusion point (stem | head) --------------------------------------------------------

#: A two-input spec as written before 'fusion_point' existed, and its fingerprint then.
OLD_TWO_INPUT: dict[str, Any] = {
    "inputs": ["image", "vector"], "input_fusion": "mlb", "stages": [8, 16], "cells_per_stage": 1,
    "cell": [{"combine": "sum", "edges": [{"src": 0, "op": "conv_3x3"}]}],
}
OLD_TWO_INPUT_FINGERPRINT = "a82881be03d571f3"


def test_spec_without_fusion_point_loads_as_stem_with_its_old_fingerprint():
    spec = ArchSpec.from_dict(OLD_TWO_INPUT)
    assert spec.fusion_point == "stem"
    assert "fusion_point" not in spec.to_dict() and "fusion_point" not in spec.to_json()
    assert spec.fingerprint() == OLD_TWO_INPUT_FINGERPRINT
    assert ArchSpec.from_dict(BASE).fingerprint() == BASE_FINGERPRINT
    # Spelling the default out is the same spec (one canonical JSON).
    explicit = ArchSpec.from_dict({**OLD_TWO_INPUT, "fusion_point": "stem"})
    assert explicit == spec and explicit.fingerprint() == OLD_TWO_INPUT_FINGERPRINT
    assert ArchSpec.from_dict({**BASE, "fusion_point": "stem"}) == ArchSpec.from_dict(BASE)


def test_head_fusion_spec_round_trips():
    d = {**copy.deepcopy(OLD_TWO_INPUT), "fusion_point": "head"}
    spec = ArchSpec.from_dict(d)
    assert spec.fusion_point == "head"
    assert spec.to_dict()["fusion_point"] == "head"
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert ArchSpec.from_dict(spec.to_dict()).to_dict() == spec.to_dict()
    assert spec.fingerprint() != OLD_TWO_INPUT_FINGERPRINT
    assert "fuse=mlb@head" in spec.summary()
    assert spec.ops().count("mlb") == 1


@pytest.mark.parametrize(
    "data,fragments",
    [
        ({**OLD_TWO_INPUT, "fusion_point": "tail"}, ["'fusion_point'", "stem, head", "'tail'"]),
        ({**OLD_TWO_INPUT, "fusion_point": "Head"}, ["'fusion_point'", "Did you mean 'head'"]),
        ({**OLD_TWO_INPUT, "fusion_point": None}, ["'fusion_point'", "None"]),
        ({**OLD_TWO_INPUT, "fusion_point": 1}, ["'fusion_point'"]),
        ({**BASE, "fusion_point": "head"}, ["'fusion_point'", "two-input specs only"]),
        ({**OLD_TWO_INPUT, "fusion_pont": "head"}, ["unknown field 'fusion_pont'",
                                                   "Did you mean 'fusion_point'"]),
    ],
    ids=["unknown", "case", "null", "int", "one-input", "misspelt-key"],
)
def test_bad_fusion_point_is_named(data, fragments):
    with pytest.raises(SpecError) as info:
        ArchSpec.from_dict(data)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
