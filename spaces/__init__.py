"""Operators, architecture specs, search spaces, model builder and cost model."""

from __future__ import annotations

from hadanas.spaces import ops  # noqa: F401  (registers the built-in operators)
from hadanas.spaces._builder import HadaNet, build_model
from hadanas.spaces._costs import Costs, count_flops, count_params, measure_latency, static_costs
from hadanas.spaces._registry import (
    FAMILIES,
    HADAMARD_FAMILIES,
    OpInfo,
    OpRegistry,
    create_op,
    default_registry,
    get_op,
    list_ops,
    register_op,
)
from hadanas.spaces._space import (
    NB201_OPS,
    RandomChooser,
    SearchSpace,
    get_space,
    list_spaces,
    register_space,
)
from hadanas.spaces._spec import FUSION_POINTS, SCHEMA_VERSION, ArchSpec, Edge, Node

__all__ = [
    "FAMILIES",
    "FUSION_POINTS",
    "HADAMARD_FAMILIES",
    "NB201_OPS",
    "SCHEMA_VERSION",
    "ArchSpec",
    "Costs",
    "Edge",
    "HadaNet",
    "Node",
    "OpInfo",
    "OpRegistry",
    "RandomChooser",
    "SearchSpace",
    "build_model",
    "count_flops",
    "count_params",
    "create_op",
    "default_registry",
    "get_op",
    "get_space",
    "list_ops",
    "list_spaces",
    "measure_latency",
    "register_op",
    "register_space",
    "static_costs",
]
