"""Objective values and constraints of a trial, from its recorded user attrs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hadanas.config import OBJECTIVES

__all__ = ["objective_values", "ATTR_OF", "format_value"]

#: objective -> the trial user attr that holds its value.
ATTR_OF = {"accuracy": "val_accuracy", "flops": "flops", "params": "params", "latency": "latency_ms"}


def objective_values(attrs: Mapping[str, Any], objectives: Sequence[str]) -> list[float]:
    out = []
    for o in objectives:
        if o not in OBJECTIVES:
            raise KeyError(o)
        v = attrs.get(ATTR_OF[o])
        out.append(float(v) if v is not None else float("nan"))
    return out


def format_value(objective: str, v: float | None) -> str:
    if v is None:
        return "-"
    if objective == "accuracy":
        return f"{v:.4f}"
    if objective == "latency":
        return f"{v:.2f}ms"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.2f}{unit}"
    return f"{v:.0f}"
