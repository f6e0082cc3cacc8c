"""``ArchSpec``: the declarative, JSON-only description of one architecture.

The network is a stem, ``len(stages)`` stages of ``cells_per_stage`` identical cells
(with a residual reduction block between stages), then global pooling and a linear head.
A cell is a DAG: node ``i`` (1-based) combines its incoming edges; an edge applies an op
to the cell input (``src = 0``) or to an earlier node's output (``0 < src < i``). The
cell's output is the sum of its loose ends (nodes no other node reads).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hadanas.exceptions import SpecError, close_matches
from hadanas.spaces._registry import KnobValue, OpRegistry, default_registry

__all__ = ["SCHEMA_VERSION", "Edge", "Node", "ArchSpec", "MODALITIES", "FUSION_POINTS"]

SCHEMA_VERSION = 1
MODALITIES = ("image", "vector")
#: Where a two-input spec fuses its vector: into the stem output (``stem``, the default and
#: what specs without the field mean) or into the pooled image features before the
#: classifier (``head``, late fusion).
FUSION_POINTS = ("stem", "head")
MAX_CHANNELS = 4096
MAX_NODES = 32
MAX_CELLS = 64

Knobs = tuple[tuple[str, KnobValue], ...]


def _knobs(d: Mapping[str, KnobValue] | Knobs | None) -> Knobs:
    if not d:
        return ()
    items = d.items() if isinstance(d, Mapping) else d
    return tuple(sorted((str(k), v) for k, v in items))


@dataclass(frozen=True)
class Edge:
    """One edge: ``op(src)`` with the op's knobs."""

    src: int
    op: str
    knobs: Knobs = ()

    def knob_dict(self) -> dict[str, KnobValue]:
        return dict(self.knobs)


@dataclass(frozen=True)
class Node:
    """A node: its edges folded with a binary ``combine`` op (``sum``, ``film``, ...)."""

    edges: tuple[Edge, ...]
    combine: str = "sum"
    combine_knobs: Knobs = ()


@dataclass(frozen=True)
class ArchSpec:
    """A complete architecture. Build modules from it with ``build_model``."""

    cell: tuple[Node, ...]
    stages: tuple[int, ...] = (16, 32)
    cells_per_stage: int = 1
    inputs: tuple[str, ...] = ("image",)
    #: How a second input (a vector) is fused with the image features; None for one input.
    input_fusion: str | None = None
    schema: int = field(default=SCHEMA_VERSION)
    #: Where the vector is fused (see ``FUSION_POINTS``). The JSON form omits the default
    #: ``stem``, so specs written before this field existed keep their JSON and fingerprint.
    fusion_point: str = "stem"

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "inputs": list(self.inputs),
            "input_fusion": self.input_fusion,
            **({"fusion_point": self.fusion_point} if self.fusion_point != "stem" else {}),
            "stages": list(self.stages),
            "cells_per_stage": self.cells_per_stage,
            "cell": [
                {
                    "combine": n.combine,
                    **({"combine_knobs": dict(n.combine_knobs)} if n.combine_knobs else {}),
                    "edges": [
                        {"src": e.src, "op": e.op, **({"knobs": dict(e.knobs)} if e.knobs else {})}
                        for e in n.edges
                    ],
                }
                for n in self.cell
            ],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent,
                          separators=None if indent else (",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes, registry: OpRegistry | None = None) -> ArchSpec:
        if not isinstance(text, (str, bytes, bytearray)):
            raise SpecError(f"spec JSON must be text or bytes, but got {type(text).__name__}.")
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
            raise SpecError(f"spec is not valid JSON: {str(exc).splitlines()[0][:200]}") from None
        return cls.from_dict(data, registry)

    @classmethod
    def from_dict(cls, data: Any, registry: OpRegistry | None = None) -> ArchSpec:
        """Validate ``data`` and build the spec; raises :class:`SpecError` naming the field."""
        reg = registry or default_registry
        if not isinstance(data, Mapping):
            raise SpecError(f"spec must be a JSON object, but got {type(data).__name__}.")
        known = {"schema", "inputs", "input_fusion", "fusion_point", "stages", "cells_per_stage", "cell"}
        for key in data:
            if key not in known:
                raise SpecError(
                    f"spec has unknown field '{_name(key)}' (valid: {', '.join(sorted(known))})."
                    + close_matches(str(key), known)
                )
        schema = data.get("schema", SCHEMA_VERSION)
        if not _is_int(schema) or schema != SCHEMA_VERSION:
            raise SpecError(f"spec field 'schema' must be {SCHEMA_VERSION}, but got {schema!r}.")
        inputs = data.get("inputs", ["image"])
        # The first input is always the image; a second one, if any, is the vector.
        if not isinstance(inputs, list) or inputs not in (["image"], ["image", "vector"]):
            raise SpecError(
                "spec field 'inputs' must be [\"image\"] or [\"image\", \"vector\"], "
                f"but got {inputs!r}."
            )
        fusion = data.get("input_fusion")
        if len(inputs) == 2:
            fusion = _op_name(fusion, "input_fusion", reg, arity=2)
        elif fusion is not None:
            raise SpecError("spec field 'input_fusion' must be null for a one-input spec.")
        point = data.get("fusion_point", "stem")
        if not isinstance(point, str) or point not in FUSION_POINTS:
            raise SpecError(
                f"spec field 'fusion_point' must be one of {', '.join(FUSION_POINTS)}, "
                f"but got {_short(point)}." + close_matches(str(point), FUSION_POINTS)
            )
        if point != "stem" and len(inputs) != 2:
            raise SpecError(
                "spec field 'fusion_point' applies to two-input specs only; "
                "omit it (or use 'stem') for a one-input spec."
            )
        stages = data.get("stages", [16, 32])
        if (
            not isinstance(stages, list)
            or not 1 <= len(stages) <= 8
            or not all(_is_int(s) and 1 <= s <= MAX_CHANNELS for s in stages)
        ):
            raise SpecError(
                f"spec field 'stages' must be a list of 1 to 8 channel counts in "
                f"1..{MAX_CHANNELS}, but got {_short(stages)}."
            )
        cps = data.get("cells_per_stage", 1)
        if not _is_int(cps) or not 1 <= cps <= MAX_CELLS:
            raise SpecError(
                f"spec field 'cells_per_stage' must be an integer in 1..{MAX_CELLS}, "
                f"but got {_short(cps)}."
            )
        cell = data.get("cell")
        if not isinstance(cell, list) or not 1 <= len(cell) <= MAX_NODES:
            raise SpecError(
                f"spec field 'cell' must be a list of 1 to {MAX_NODES} nodes, but got {_short(cell)}."
            )
        nodes = []
        for i, raw in enumerate(cell, start=1):
            where = f"cell[{i - 1}]"
            if not isinstance(raw, Mapping):
                raise SpecError(f"spec field '{where}' must be an object with 'edges' and 'combine'.")
            for key in raw:
                if key not in ("edges", "combine", "combine_knobs"):
                    raise SpecError(
                        f"spec field '{where}' has unknown key '{_name(key)}' "
                        "(valid: combine, combine_knobs, edges)."
                    )
            edges_raw = raw.get("edges")
            if not isinstance(edges_raw, list) or not 1 <= len(edges_raw) <= MAX_NODES:
                raise SpecError(
                    f"spec field '{where}.edges' must be a non-empty list of at most "
                    f"{MAX_NODES} edges, but got {_short(edges_raw)}."
                )
            combine = _op_name(raw.get("combine", "sum"), f"{where}.combine", reg, arity=2)
            ck = _knob_map(raw.get("combine_knobs", {}), f"{where}.combine_knobs", reg, combine)
            edges = []
            for j, e in enumerate(edges_raw):
                ew = f"{where}.edges[{j}]"
                if not isinstance(e, Mapping):
                    raise SpecError(f"spec field '{ew}' must be an object with 'src' and 'op'.")
                for key in e:
                    if key not in ("src", "op", "knobs"):
                        raise SpecError(
                            f"spec field '{ew}' has unknown key '{_name(key)}' (valid: knobs, op, src)."
                        )
                src = e.get("src")
                if not _is_int(src) or not 0 <= src < i:
                    raise SpecError(
                        f"spec field '{ew}.src' must be an integer in 0..{i - 1} (the cell input "
                        f"or an earlier node; edges may not point forward or form cycles), "
                        f"but got {_short(src)}."
                    )
                op = _op_name(e.get("op"), f"{ew}.op", reg, arity=1)
                knobs = _knob_map(e.get("knobs", {}), f"{ew}.knobs", reg, op)
                edges.append(Edge(src, op, knobs))
            nodes.append(Node(tuple(edges), combine, ck))
        return cls(
            cell=tuple(nodes),
            stages=tuple(stages),
            cells_per_stage=cps,
            inputs=tuple(inputs),
            input_fusion=fusion,
            fusion_point=point,
        )

    # --- identity ------------------------------------------------------------------
    def fingerprint(self) -> str:
        """Stable hash of the canonical JSON; equal specs have equal fingerprints."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def loose_ends(self) -> list[int]:
        used = {e.src for n in self.cell for e in n.edges}
        return [i for i in range(1, len(self.cell) + 1) if i not in used]

    def ops(self) -> list[str]:
        """Every op name used by the spec (edges, combines of multi-edge nodes, input fusion)."""
        names = [e.op for n in self.cell for e in n.edges]
        names += [n.combine for n in self.cell if len(n.edges) > 1]
        if self.input_fusion:
            names.append(self.input_fusion)
        return names

    def summary(self) -> str:
        """A compact one-line description, for tables and hover text."""
        parts = []
        for i, n in enumerate(self.cell, start=1):
            edges = ",".join(f"{e.op}({e.src})" for e in n.edges)
            parts.append(f"n{i}={n.combine}[{edges}]" if len(n.edges) > 1 else f"n{i}={edges}")
        head = f"w{'/'.join(map(str, self.stages))} x{self.cells_per_stage}"
        if self.input_fusion:
            head += f" fuse={self.input_fusion}"
            if self.fusion_point != "stem":
                head += f"@{self.fusion_point}"
        return head + " | " + " ".join(parts)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _short(v: Any) -> str:
    try:
        text = repr(v)
    except (RecursionError, ValueError):
        text = f"<{type(v).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _name(v: Any) -> str:
    """A user-given name for a one-line message: control characters escaped, at most 60 chars."""
    text = repr(str(v))[1:-1]
    return text if len(text) <= 60 else text[:57] + "..."


def _op_name(name: Any, where: str, reg: OpRegistry, arity: int) -> str:
    if not isinstance(name, str):
        raise SpecError(f"spec field '{where}' must be an op name (a string), but got {_short(name)}.")
    if name not in reg:
        valid = reg.list(arity=arity)
        raise SpecError(
            f"spec field '{where}' names unknown op '{_name(name)}'."
            + close_matches(name, valid)
            + f" Valid ops: {', '.join(valid)}."
        )
    info = reg.get(name)
    if info.arity != arity:
        kind = "a one-input (edge) op" if arity == 1 else "a two-input (combine) op"
        raise SpecError(
            f"spec field '{where}' must be {kind}, but '{name}' takes {info.arity} input(s). "
            f"Valid: {', '.join(reg.list(arity=arity))}."
        )
    return name


def _knob_map(raw: Any, where: str, reg: OpRegistry, op: str) -> Knobs:
    if not isinstance(raw, Mapping):
        raise SpecError(f"spec field '{where}' must be an object, but got {_short(raw)}.")
    problem = reg.get(op).check_knobs(raw)
    if problem:
        raise SpecError(f"spec field '{where}': {problem}")
    return _knobs(raw)
