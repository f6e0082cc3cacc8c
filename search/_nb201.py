"""NAS-Bench-201 benchmark mode: trials look their cell up in the published table.

No training: the 12-epoch CIFAR-10 validation accuracy is the cheap fidelity and the
200-epoch one the full fidelity (accuracies are stored as fractions). Params and FLOPs
come from the NB201 network as hadanas builds it (3x32x32 input, 10 classes): the cost
of a cell is additive over its six edges, so the network is counted once per op and
every architecture's cost is a sum (a test checks it against direct counts).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

from hadanas.exceptions import ConfigError, DatasetError
from hadanas.spaces import ArchSpec, Edge, Node, SearchSpace, build_model, count_flops, count_params

__all__ = ["NB201Table", "NB201Row", "nb201_costs", "FIDELITY_EPOCHS", "INPUT_SHAPES", "NUM_CLASSES"]

FIDELITY_EPOCHS = (12, 200)
INPUT_SHAPES = [(3, 32, 32)]
NUM_CLASSES = 10
_COLUMNS = ("arch_str", "cifar10_valid_12ep", "cifar10_valid_200ep")


@dataclass(frozen=True)
class NB201Row:
    valid_12: float  # fraction
    valid_200: float  # fraction
    test_200: float | None = None


class NB201Table:
    """The NAS-Bench-201 table (arch_str -> accuracies), read once per path and process."""

    def __init__(self, rows: dict[str, NB201Row], path: str) -> None:
        self.rows = rows
        self.path = path

    @staticmethod
    @functools.lru_cache(maxsize=4)
    def load(path: str) -> NB201Table:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"benchmark file '{path}' does not exist; pass --benchmark-file with "
                              "the NAS-Bench-201 CSV (columns arch_str, cifar10_valid_12ep, "
                              "cifar10_valid_200ep).")
        rows: dict[str, NB201Row] = {}
        try:
            with p.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise DatasetError(f"benchmark file '{path}' lacks column(s) {', '.join(missing)}.")
                for i, r in enumerate(reader, start=2):
                    try:
                        rows[r["arch_str"]] = NB201Row(
                            float(r["cifar10_valid_12ep"]) / 100.0,
                            float(r["cifar10_valid_200ep"]) / 100.0,
                            float(r["cifar10_test_200ep"]) / 100.0 if r.get("cifar10_test_200ep") else None,
                        )
                    except (TypeError, ValueError):
                        raise DatasetError(f"benchmark file '{path}', line {i}: accuracies must be numbers.") from None
        except UnicodeDecodeError:
            raise DatasetError(f"benchmark file '{path}' is not UTF-8 CSV text.") from None
        if not rows:
            raise DatasetError(f"benchmark file '{path}' has no rows.")
        return NB201Table(rows, path)

    def lookup(self, space: SearchSpace, spec: ArchSpec) -> NB201Row:
        key = space.to_nb201(spec)
        try:
            return self.rows[key]
        except KeyError:
            raise DatasetError(f"cell {key} is not in the benchmark table '{self.path}'.") from None


def _uniform(space: SearchSpace, op: str) -> ArchSpec:
    nodes = tuple(Node(tuple(Edge(s, op) for s in range(i)), "sum") for i in range(1, space.n_nodes + 1))
    return ArchSpec(nodes, tuple(space.widths[0] * 2**s for s in range(space.n_stages)),
                    space.cells_per_stage[0])


@functools.lru_cache(maxsize=2)
def _op_costs(space_name: str) -> tuple[int, int, dict[str, tuple[float, float]]]:
    from hadanas.spaces import get_space

    space = get_space(space_name)
    n_edges = space.n_nodes * (space.n_nodes + 1) // 2
    uniform = {}
    for op in space.edge_ops:
        model = build_model(_uniform(space, op), INPUT_SHAPES, NUM_CLASSES)
        uniform[op] = (count_params(model), count_flops(model, INPUT_SHAPES))
    ref = "skip"
    base_p, base_f = uniform[ref]
    per = {op: ((p - base_p) / n_edges, (f - base_f) / n_edges) for op, (p, f) in uniform.items()}
    return base_p, base_f, per


def nb201_costs(space: SearchSpace, spec: ArchSpec) -> tuple[int, int]:
    """Exact params and FLOPs of the built NB201 network of ``spec`` (additive over edges)."""
    base_p, base_f, per = _op_costs(space.name)
    p = base_p + sum(per[e.op][0] for n in spec.cell for e in n.edges)
    f = base_f + sum(per[e.op][1] for n in spec.cell for e in n.edges)
    return int(round(p)), int(round(f))
