"""Property-based fuzzing of architecture specs: ArchSpec.from_json/from_dict, hadanas.load
and `hadanas export` on a store whose trial holds a hostile spec.

Every input either loads as a valid spec (which then round-trips through JSON unchanged) or
fails with one SpecError line that names the field; through the CLI, exit code 2, one line
on stderr, no traceback, and the store is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fuzz import ADVERSARIAL, JSON, deep, fuzz_settings, get_at, one_line, paths, tried  # noqa: E402

from hadanas.exceptions import HadanasError, SpecError  # noqa: E402
from hadanas.spaces import ArchSpec, get_space, list_spaces  # noqa: E402

SPACES = list_spaces()
TOP = ("schema", "inputs", "input_fusion", "stages", "cells_per_stage", "cell")


def _valid(space: str, seed: int) -> dict[str, Any]:
    return get_space(space).sample(seed=seed).to_dict()


def _outcome(load: Any) -> ArchSpec | str:
    """Load; a valid spec must round-trip, a bad one must give one SpecError line."""
    try:
        spec = load()
    except SpecError as exc:
        msg = one_line(str(exc))
        assert msg.startswith("spec"), msg
        return msg
    assert isinstance(spec, ArchSpec)
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec and again.fingerprint() == spec.fingerprint()
    return spec


@st.composite
def mutated_specs(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[Any, ...], str]:
    """A valid spec with one thing broken: a value replaced, a key dropped or added, a list
    emptied or overfilled, an edge pointed forward, at itself or below 0."""
    spec = _valid(draw(st.sampled_from(SPACES)), draw(st.integers(0, 10_000)))
    where = draw(st.sampled_from(paths(spec)[1:]))
    parent = get_at(spec, where[:-1])
    key = where[-1]
    how = draw(st.sampled_from(["replace", "replace", "drop", "add_key", "empty", "overfill", "src"]))
    if how == "src":
        srcs = [p for p in paths(spec) if p and p[-1] == "src"]
        where = draw(st.sampled_from(srcs))
        node = where[1]
        get_at(spec, where[:-1])["src"] = draw(st.sampled_from([node + 1, node + 2, -1, 10**9, "0", 0.0, None]))
    elif how == "drop" and isinstance(parent, dict):
        del parent[key]
    elif how == "add_key":
        target = get_at(spec, where) if isinstance(get_at(spec, where), dict) else spec
        target[draw(st.sampled_from(["srcs", "Op", "edge", "cels", "knob", "", "stage"]))] = draw(ADVERSARIAL)
    elif how == "empty" and isinstance(get_at(spec, where), (list, dict)):
        get_at(spec, where).clear()
    elif how == "overfill" and isinstance(get_at(spec, where), list) and get_at(spec, where):
        lst = get_at(spec, where)
        lst.extend(copy.deepcopy(lst[-1]) for _ in range(draw(st.integers(1, 70))))
    else:
        parent[key] = draw(ADVERSARIAL)
    return spec, where, how


@fuzz_settings(400)
@given(mutated_specs())
def test_mutated_specs_are_valid_or_one_line_naming_the_field(case: tuple[dict, tuple, str]) -> None:
    spec, where, how = case
    tried("spec: one mutation of a valid spec")
    out = _outcome(lambda: ArchSpec.from_dict(spec))
    if isinstance(out, str):
        top = str(where[0])
        named = [top, *TOP] if how == "add_key" else [top, "input_fusion"]  # inputs -> input_fusion
        assert any(f"'{n}" in out or f" {n}" in out for n in named) or "unknown field" in out, (where, how, out)
    # The JSON text path agrees with the dict path.
    try:
        text = json.dumps(spec)
    except ValueError:
        return
    out2 = _outcome(lambda: ArchSpec.from_json(text))
    assert type(out2) is type(out) and (isinstance(out, str) or out2 == out)


@fuzz_settings(300)
@given(JSON)
def test_any_json_value(value: Any) -> None:
    tried("spec: arbitrary JSON value")
    _outcome(lambda: ArchSpec.from_json(json.dumps(value)))
    _outcome(lambda: ArchSpec.from_dict(value))


@fuzz_settings(200)
@given(st.dictionaries(st.sampled_from(TOP), ADVERSARIAL, min_size=1))
def test_objects_with_the_spec_keys_and_hostile_values(value: dict[str, Any]) -> None:
    tried("spec: spec keys with hostile values")
    _outcome(lambda: ArchSpec.from_dict(value))


@fuzz_settings(200)
@given(st.binary(max_size=200) | st.sampled_from([
    b"\xff\xfe{", b"\xc3\x28", b'{"cell": "\xed\xa0\x80"}', "{\"cell\": 1}".encode("utf-16"),
    b"\x00" * 10, b"", b"\xef\xbb\xbf{}",
]))
def test_raw_bytes_including_non_utf8(data: bytes) -> None:
    tried("spec: raw bytes")
    _outcome(lambda: ArchSpec.from_json(data))


@pytest.mark.parametrize("depth", [50, 1_000, 100_000])
@pytest.mark.parametrize("kind", ["list", "dict"])
def test_deep_nesting(depth: int, kind: str) -> None:
    tried("spec: deep nesting")
    text = ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "0" + "}" * depth)
    _outcome(lambda: ArchSpec.from_json(text))
    spec = _valid("full", 0)
    spec["cell"][0]["edges"][0]["knobs"] = deep(min(depth, 5000), kind)
    msg = _outcome(lambda: ArchSpec.from_dict(spec))
    assert isinstance(msg, str) and "cell[0].edges[0].knobs" in msg


@pytest.mark.parametrize("text, fragment", [
    ('{"cell": [], "stages": [16]}', "'cell' must be a list of 1 to"),
    ('{"cell": [{"edges": []}]}', "'cell[0].edges' must be a non-empty list"),
    ('{"cell": [{"edges": [{"src": 1, "op": "skip"}]}]}', "may not point forward or form cycles"),
    ('{"cell": [{"edges": [{"src": 0, "op": "skip"}]}, {"edges": [{"src": 2, "op": "skip"}]}]}',
     "'cell[1].edges[0].src' must be an integer in 0..1"),
    ('{"cell": [{"edges": [{"src": 0, "op": "conv3x3"}]}]}', "Did you mean 'conv_3x3'"),
    ('{"cell": [{"edges": [{"src": 0, "op": "film"}]}]}', "must be a one-input (edge) op"),
    ('{"cell": [{"edges": [{"src": 0, "op": "skip"}]}], "stages": [100000000]}', "'stages' must be a list"),
    ('{"cell": [{"edges": [{"src": 0, "op": "skip"}]}], "stages": [1e999]}', "'stages' must be a list"),
    ('{"cell": [{"edges": [{"src": 0, "op": "skip"}]}], "cells_per_stage": 1' + "0" * 5000 + "}", "spec"),
    ('{"cell": [{"edges": [{"src": 0, "op": "skip"}]}], "schema": 2}', "'schema' must be 1"),
    ('{"cell": [{"edges": [{"src": 0, "op": "skip"}]}], "stagse": [16]}', "Did you mean 'stages'"),
])
def test_named_bad_specs(text: str, fragment: str) -> None:
    tried("spec: named cases")
    msg = _outcome(lambda: ArchSpec.from_json(text))
    assert isinstance(msg, str) and fragment in msg, msg


# --- hadanas.load: an export folder someone sent -------------------------------------------


@fuzz_settings(80)
@given(st.one_of(mutated_specs().map(lambda c: json.dumps(c[0]).encode()), st.binary(max_size=64),
                 JSON.map(lambda v: json.dumps(v).encode())),
       st.sampled_from(["ok", "bad-meta", "no-meta", "meta-not-object", "bad-weights"]))
def test_load_of_a_hostile_export_folder(spec_bytes: bytes, meta_kind: str) -> None:
    import hadanas

    tried("hadanas.load: hostile export folder")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "spec.json").write_bytes(spec_bytes)
        meta = {"ok": b'{"input_shapes": [[1, 8, 8]], "num_classes": 10}', "bad-meta": b"\xff{",
                "meta-not-object": b"[1, 2]", "bad-weights": b'{"input_shapes": [[1, 8, 8]], "num_classes": 10}'}
        if meta_kind in meta:
            (d / "hadanas.json").write_bytes(meta[meta_kind])
        (d / "weights.safetensors").write_bytes(b"not safetensors" if meta_kind == "bad-weights" else b"")
        with pytest.raises(HadanasError) as info:  # no valid weights in any case
            hadanas.load(d)
        msg = one_line(str(info.value))
        if meta_kind in ("bad-meta", "meta-not-object", "no-meta"):
            assert "hadanas.json" in msg or "spec" in msg, msg


# --- `hadanas export` on a store whose trial holds a hostile spec ---------------------------


def _store_dump(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import optuna

    from hadanas.search import open_storage

    d = tmp_path_factory.mktemp("hostile-store")
    url = f"sqlite:///{d / 's.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=open_storage(url), study_name="s", directions=["maximize", "minimize"])
    for k, v in {"hadanas_version": "0.1.0", "input_shapes": [[1, 8, 8]], "num_classes": 10,
                 "objectives": ["accuracy", "flops"], "artifact_dir": str(d / "art")}.items():
        study.set_user_attr(k, v)
    return {"url": url, "db": d / "s.db", "study": study, "dir": d}


@fuzz_settings(30)
@given(st.one_of(mutated_specs().map(lambda c: c[0]), JSON, st.dictionaries(st.sampled_from(TOP), ADVERSARIAL)))
def test_export_cli_of_a_trial_with_a_hostile_spec(hostile_store: dict[str, Any], spec: Any) -> None:
    from hadanas.cli import main

    tried("hadanas export: trial with hostile spec")
    study = hostile_store["study"]
    t = study.ask()
    t.set_user_attr("spec", spec)
    t.set_user_attr("status", "trained")
    study.tell(t, [0.5, 100.0])
    before = _store_dump(hostile_store["db"])
    err = io.StringIO()
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        code = main(["export", "--storage", hostile_store["url"], "--study", "s", "--trial", str(t.number),
                     "--out", out])
    assert code == 2, err.getvalue()
    line = one_line(err.getvalue().strip())
    assert line.startswith("hadanas: error: "), line
    assert _store_dump(hostile_store["db"]) == before, "export wrote to the store"
