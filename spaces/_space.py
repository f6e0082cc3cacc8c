"""Search spaces: flat, explicitly labelled choices that turn an Optuna trial into an ArchSpec."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from hadanas.exceptions import ConfigError, close_matches
from hadanas.spaces._registry import (
    FAMILIES,
    HADAMARD_FAMILIES,
    OpRegistry,
    default_registry,
)
from hadanas.spaces._spec import FUSION_POINTS, ArchSpec, Edge, Node, _knobs

__all__ = [
    "Chooser",
    "RandomChooser",
    "SearchSpace",
    "get_space",
    "list_spaces",
    "register_space",
    "NB201_OPS",
]


class Chooser(Protocol):
    """What :meth:`SearchSpace.suggest` needs: an ``optuna.Trial`` satisfies it."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


class RandomChooser:
    """Uniform random choices from a seeded ``random.Random`` (no Optuna needed)."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self.rng.choice(list(choices))
        self.params[name] = value
        return value


class _ParamsChooser:
    """Answers from a dict of parameters, drawing the ones it lacks (or whose value is not a
    choice); records what was asked."""

    def __init__(self, params: dict[str, Any], draw: Callable[[str, list[Any]], Any] | None) -> None:
        self.given = params
        self.draw = draw
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        choices = list(choices)
        value = self.given.get(name, _MISSING)
        if value is _MISSING or not any(value == c and type(value) is type(c) for c in choices):
            value = self.draw(name, choices) if self.draw is not None else choices[0]
        self.params[name] = value
        return value


_MISSING = object()


#: NAS-Bench-201 op names -> registry op names.
NB201_OPS: dict[str, str] = {
    "none": "zero",
    "skip_connect": "skip",
    "nor_conv_1x1": "conv_1x1",
    "nor_conv_3x3": "conv_3x3",
    "avg_pool_3x3": "avg_pool_3x3",
}


@dataclass(frozen=True)
class SearchSpace:
    """The choices of a cell-based space.

    ``dense=False``: each of ``n_nodes`` nodes has ``edges_per_node`` edges, each with a
    chosen source, op (and the op's knobs), folded by a chosen combine.
    ``dense=True``: node ``i`` has one edge from every earlier node, combined by ``sum``
    (the NAS-Bench-201 cell).
    """

    name: str
    edge_ops: tuple[str, ...]
    combines: tuple[str, ...] = ("sum",)
    widths: tuple[int, ...] = (16,)
    cells_per_stage: tuple[int, ...] = (1,)
    n_stages: int = 2
    n_nodes: int = 3
    edges_per_node: int = 2
    dense: bool = False
    inputs: tuple[str, ...] = ("image",)
    input_fusions: tuple[str, ...] = ()
    description: str = ""
    registry: OpRegistry = field(default=default_registry, compare=False, repr=False)
    #: Where a two-input space may fuse its vector (``stem``, ``head``); a choice when
    #: more than one is given.
    fusion_points: tuple[str, ...] = ("stem",)

    def __post_init__(self) -> None:
        for op in self.edge_ops:
            if self.registry.get(op).arity != 1:
                raise ConfigError(f"space '{self.name}': edge op '{op}' must take one input.")
        for op in (*self.combines, *self.input_fusions):
            if self.registry.get(op).arity != 2:
                raise ConfigError(f"space '{self.name}': combine '{op}' must take two inputs.")
        if not self.edge_ops or not self.combines or not self.widths:
            raise ConfigError(f"space '{self.name}' needs at least one edge op, combine and width.")
        if len(self.inputs) == 2 and not self.input_fusions:
            raise ConfigError(f"space '{self.name}' has two inputs but no input_fusions.")
        if not self.fusion_points or any(p not in FUSION_POINTS for p in self.fusion_points) \
                or len(set(self.fusion_points)) != len(self.fusion_points):
            raise ConfigError(
                f"space '{self.name}': fusion_points must be distinct values of "
                f"{', '.join(FUSION_POINTS)}, but got {list(self.fusion_points)}."
            )
        if len(self.inputs) != 2 and self.fusion_points != ("stem",):
            raise ConfigError(f"space '{self.name}' has one input, so its fusion_points must be ('stem',).")

    # --- sampling ------------------------------------------------------------------
    def _knobs(self, chooser: Chooser, prefix: str, op: str) -> dict[str, Any]:
        info = self.registry.get(op)
        return {k: chooser.suggest_categorical(f"{prefix}.{op}.{k}", list(v))
                for k, v in info.knobs.items()}

    def suggest(self, chooser: Chooser) -> ArchSpec:
        """Draw one architecture: pass an ``optuna.Trial`` or a :class:`RandomChooser`."""
        width = chooser.suggest_categorical("width", list(self.widths))
        cps = chooser.suggest_categorical("cells_per_stage", list(self.cells_per_stage))
        nodes = []
        for i in range(1, self.n_nodes + 1):
            if self.dense:
                edges = []
                for src in range(i):
                    op = chooser.suggest_categorical(f"edge{i}~{src}", list(self.edge_ops))
                    edges.append(Edge(src, op, _knobs(self._knobs(chooser, f"edge{i}~{src}", op))))
                nodes.append(Node(tuple(edges), "sum"))
                continue
            edges = []
            for j in range(self.edges_per_node):
                p = f"node{i}.edge{j}"
                src = chooser.suggest_categorical(f"{p}.src", list(range(i)))
                op = chooser.suggest_categorical(f"{p}.op", list(self.edge_ops))
                edges.append(Edge(src, op, _knobs(self._knobs(chooser, p, op))))
            combine = "sum"
            ck: dict[str, Any] = {}
            if len(edges) > 1:
                combine = chooser.suggest_categorical(f"node{i}.combine", list(self.combines))
                ck = self._knobs(chooser, f"node{i}.combine", combine)
            nodes.append(Node(tuple(edges), combine, _knobs(ck)))
        fusion = None
        point = self.fusion_points[0]
        if len(self.inputs) == 2:
            fusion = chooser.suggest_categorical("input_fusion", list(self.input_fusions))
            if len(self.fusion_points) > 1:
                point = chooser.suggest_categorical("fusion_point", list(self.fusion_points))
        stages = tuple(width * 2**s for s in range(self.n_stages))
        return ArchSpec(tuple(nodes), stages, cps, self.inputs, fusion, fusion_point=point)

    def sample(self, seed: int | None = None) -> ArchSpec:
        return self.suggest(RandomChooser(seed))

    def resolve(self, params: dict[str, Any],
                draw: Callable[[str, list[Any]], Any] | None = None) -> tuple[dict[str, Any], str]:
        """The parameters :meth:`suggest` reads when answered from ``params``, and the
        fingerprint of the architecture they make.

        Parameters ``suggest`` does not ask (the knobs of an op that is not chosen) are left
        out; one it asks that ``params`` lacks, or holds a value outside its choices, is
        drawn by ``draw(name, choices)`` (default: the first choice). Two parameter sets
        that make the same architecture resolve to the same fingerprint.
        """
        chooser = _ParamsChooser(params, draw)
        spec = self.suggest(chooser)
        return chooser.params, spec.fingerprint()

    # --- membership and size -------------------------------------------------------
    def check(self, spec: ArchSpec) -> str | None:
        """Return why ``spec`` is outside this space, or None when it is inside."""
        if spec.inputs != self.inputs:
            return f"inputs {list(spec.inputs)} differ from the space's {list(self.inputs)}."
        if len(spec.stages) != self.n_stages or spec.stages[0] not in self.widths or any(
            spec.stages[s] != spec.stages[0] * 2**s for s in range(self.n_stages)
        ):
            return f"stages {list(spec.stages)} are not a width in {list(self.widths)} doubled per stage."
        if spec.cells_per_stage not in self.cells_per_stage:
            return f"cells_per_stage {spec.cells_per_stage} is not one of {list(self.cells_per_stage)}."
        if len(spec.cell) != self.n_nodes:
            return f"the cell has {len(spec.cell)} nodes; the space has {self.n_nodes}."
        for i, node in enumerate(spec.cell, start=1):
            expect = i if self.dense else self.edges_per_node
            if len(node.edges) != expect:
                return f"node {i} has {len(node.edges)} edges; the space has {expect}."
            if self.dense and [e.src for e in node.edges] != list(range(i)):
                return f"node {i} must read every earlier node once, in order."
            for e in node.edges:
                if not 0 <= e.src < i:
                    return f"node {i} reads node {e.src}; it may read only nodes 0..{i - 1}."
                if e.op not in self.edge_ops:
                    return f"op '{e.op}' is not in space '{self.name}'."
                problem = self.registry.get(e.op).check_knobs(e.knob_dict())
                if problem:
                    return problem
            if len(node.edges) > 1 and not self.dense:
                if node.combine not in self.combines:
                    return f"combine '{node.combine}' is not in space '{self.name}'."
                problem = self.registry.get(node.combine).check_knobs(dict(node.combine_knobs))
                if problem:
                    return problem
            elif node.combine != "sum" or node.combine_knobs:
                # suggest() always writes 'sum' here (the combine of a one-edge node is
                # never built); anything else is a second spelling of the same model.
                what = "one-edge" if len(node.edges) == 1 else "dense"
                return f"node {i} is a {what} node, so its combine must be 'sum' without knobs."
        if len(self.inputs) == 2:
            if spec.input_fusion not in self.input_fusions:
                return f"input_fusion '{spec.input_fusion}' is not in space '{self.name}'."
        elif spec.input_fusion is not None:
            return "input_fusion must be None for a one-input space."
        if spec.fusion_point not in self.fusion_points:
            return (f"fusion_point '{spec.fusion_point}' is not in space '{self.name}' "
                    f"({', '.join(self.fusion_points)}).")
        return None

    def _variants(self, op: str) -> int:
        return math.prod(len(v) for v in self.registry.get(op).knobs.values()) if op else 1

    def size(self) -> int:
        """The number of distinct architectures in the space."""
        ops = sum(self._variants(o) for o in self.edge_ops)
        combines = sum(self._variants(o) for o in self.combines)
        total = len(self.widths) * len(self.cells_per_stage)
        for i in range(1, self.n_nodes + 1):
            if self.dense:
                total *= ops**i
            else:
                total *= (i * ops) ** self.edges_per_node * (
                    combines if self.edges_per_node > 1 else 1
                )
        if len(self.inputs) == 2:
            # The input fusion is built with its default knobs (ArchSpec has no field for
            # fusion knobs), so each fusion op is one choice.
            total *= len(self.input_fusions) * len(self.fusion_points)
        return total

    def families(self) -> list[str]:
        names = [*self.edge_ops, *self.combines, *self.input_fusions]
        fams = {self.registry.get(n).family for n in names}
        return [f for f in FAMILIES if f in fams]

    def without_families(self, families: Sequence[str], name: str) -> SearchSpace:
        keep = lambda ops: tuple(o for o in ops if self.registry.get(o).family not in families)  # noqa: E731
        fusions = keep(self.input_fusions) or (("sum",) if self.input_fusions else ())
        return replace(
            self,
            name=name,
            edge_ops=keep(self.edge_ops),
            combines=keep(self.combines) or ("sum",),
            input_fusions=fusions,
            description=f"'{self.name}' without the {', '.join(families)} famil"
            + ("y" if len(families) == 1 else "ies"),
        )

    # --- NAS-Bench-201 notation ----------------------------------------------------
    def to_nb201(self, spec: ArchSpec) -> str:
        """``|op~0|+|op~0|op~1|+|...|`` for a spec of the ``nb201`` space."""
        inverse = {v: k for k, v in NB201_OPS.items()}
        try:
            return "+".join(
                "|" + "|".join(f"{inverse[e.op]}~{e.src}" for e in n.edges) + "|"
                for n in spec.cell
            )
        except KeyError as exc:
            raise ConfigError(f"op {exc} has no NAS-Bench-201 name.") from None

    def from_nb201(self, arch_str: str) -> ArchSpec:
        """The spec of an NAS-Bench-201 ``arch_str`` in this (nb201) space."""
        nodes = []
        for i, part in enumerate(arch_str.strip().split("+"), start=1):
            items = [t for t in part.strip("|").split("|") if t]
            edges = []
            for item in items:
                name, _, src = item.partition("~")
                if name not in NB201_OPS or not (src.isascii() and src.isdigit()):
                    raise ConfigError(
                        f"'{item}' in arch_str is not 'op~src' with op in {list(NB201_OPS)}."
                    )
                edges.append(Edge(int(src), NB201_OPS[name]))
            nodes.append(Node(tuple(edges), "sum"))
        spec = ArchSpec(tuple(nodes), tuple(self.widths[0] * 2**s for s in range(self.n_stages)),
                        self.cells_per_stage[0])
        problem = self.check(spec)
        if problem:
            raise ConfigError(f"arch_str '{arch_str}' is not an nb201 cell: {problem}")
        return spec


# --- named spaces --------------------------------------------------------------------
_SPACES: dict[str, Callable[[], SearchSpace]] = {}

_FULL_EDGE_OPS = (
    "zero", "skip", "max_pool_3x3", "avg_pool_3x3", "conv_1x1", "conv_3x3",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "mhsa", "ffn",
    "poly_ccp", "star", "mu_layer",
    "se", "glu", "swiglu", "spatial_gating", "gated_conv",
    "partial_conv", "soft_mask",
    "aft_simple", "aft_conv", "hyena",
)
_FULL_COMBINES = ("sum", "concat", "star_fusion", "mlb", "film", "mutan")


def register_space(name: str, factory: Callable[[], SearchSpace]) -> None:
    """Make a space available by name (to ``get_space`` and ``--space``)."""
    if name in _SPACES:
        raise ValueError(f"a space named '{name}' is already registered.")
    _SPACES[name] = factory


def list_spaces() -> list[str]:
    return list(_SPACES)


def get_space(name: str) -> SearchSpace:
    try:
        return _SPACES[name]()
    except KeyError:
        raise ConfigError(
            f"unknown space '{name}'." + close_matches(name, _SPACES)
            + f" Valid spaces: {', '.join(_SPACES)}."
        ) from None


def _full() -> SearchSpace:
    return SearchSpace(
        name="full",
        edge_ops=_FULL_EDGE_OPS,
        combines=_FULL_COMBINES,
        widths=(8, 16),
        cells_per_stage=(1, 2),
        description="conventional ops beside every Hadamard family",
    )


register_space("full", _full)
register_space(
    "conventional",
    lambda: replace(_full().without_families(HADAMARD_FAMILIES, "conventional"),
                    description="'full' without any Hadamard family (ablation baseline)"),
)
for _fam in HADAMARD_FAMILIES:
    register_space(
        f"no-{_fam.replace('_', '-')}",
        (lambda f: lambda: _full().without_families((f,), f"no-{f.replace('_', '-')}"))(_fam),
    )
register_space(
    "nb201",
    lambda: SearchSpace(
        name="nb201",
        edge_ops=tuple(NB201_OPS.values()),
        widths=(16,),
        cells_per_stage=(5,),
        n_stages=3,
        n_nodes=3,
        dense=True,
        description="the NAS-Bench-201 cell (5 ops on 6 edges), 3 stages x 5 cells",
    ),
)
def _fusion() -> SearchSpace:
    return replace(
        _full(),
        name="fusion",
        inputs=("image", "vector"),
        input_fusions=_FULL_COMBINES,
        fusion_points=("stem", "head"),
        description="'full' for two-input data: an image and a vector, fused after the stem "
        "or with the pooled features before the classifier",
    )


register_space("fusion", _fusion)
# Ablations of the two-input space (the input fusion falls back to sum/concat without the
# fusion family).
register_space(
    "fusion-conventional",
    lambda: replace(_fusion().without_families(HADAMARD_FAMILIES, "fusion-conventional"),
                    description="'fusion' without any Hadamard family (ablation baseline)"),
)
for _fam in HADAMARD_FAMILIES:
    register_space(
        f"fusion-no-{_fam.replace('_', '-')}",
        (lambda f: lambda: _fusion().without_families((f,), f"fusion-no-{f.replace('_', '-')}"))(_fam),
    )
