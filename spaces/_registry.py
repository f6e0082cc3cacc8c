"""Operator registry: typed factories registered by name, created by name.

Every operator factory has the signature ``factory(C, stride=1, **knobs) -> nn.Module``.
A unary op maps ``(N, C, H, W) -> (N, C, H', W')`` with ``H' = ceil(H / stride)``; a
binary op (``arity=2``, a node combine / fusion) maps two such tensors to one.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from hadanas.exceptions import SpecError, close_matches

__all__ = [
    "FAMILIES",
    "HADAMARD_FAMILIES",
    "OpInfo",
    "OpRegistry",
    "default_registry",
    "register_op",
    "create_op",
    "list_ops",
    "get_op",
]

#: Operator families, after the taxonomy of "Hadamard product in deep learning".
FAMILIES: tuple[str, ...] = (
    "conventional",
    "higher_order",
    "gating",
    "masking",
    "fusion",
    "pairwise",
)
HADAMARD_FAMILIES: tuple[str, ...] = FAMILIES[1:]

KnobValue = int | float | str | bool


@dataclass(frozen=True)
class OpInfo:
    """What the registry knows about one operator."""

    name: str
    family: str
    arity: int
    factory: Callable[..., nn.Module]
    knobs: Mapping[str, tuple[KnobValue, ...]] = field(default_factory=dict)
    description: str = ""
    #: Whether the op starts near identity (gates, polynomial terms).
    near_identity: bool = False

    def default_knobs(self) -> dict[str, KnobValue]:
        return {k: v[0] for k, v in self.knobs.items()}

    def check_knobs(self, knobs: Mapping[str, Any]) -> str | None:
        for key, value in knobs.items():
            if key not in self.knobs:
                valid = ", ".join(sorted(self.knobs)) or "none"
                return (
                    f"op '{self.name}' has no knob '{key}' (valid knobs: {valid})."
                    + close_matches(key, self.knobs)
                )
            if value not in self.knobs[key] or type(value) is not type(self.knobs[key][0]):
                return (
                    f"knob '{key}' of op '{self.name}' must be one of "
                    f"{list(self.knobs[key])}, but got {value!r}."
                )
        return None


class OpRegistry:
    """A name -> :class:`OpInfo` table. Tests may build a fresh one."""

    def __init__(self) -> None:
        self._ops: dict[str, OpInfo] = {}

    def register(
        self,
        name: str,
        *,
        family: str,
        arity: int = 1,
        knobs: Mapping[str, Sequence[KnobValue]] | None = None,
        description: str = "",
        near_identity: bool = False,
    ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
        if family not in FAMILIES:
            raise ValueError(
                f"family must be one of {list(FAMILIES)}, but got {family!r}."
                + close_matches(family, FAMILIES)
            )
        if arity not in (1, 2):
            raise ValueError(f"arity must be 1 or 2, but got {arity!r}.")
        knob_table = {k: tuple(v) for k, v in (knobs or {}).items()}
        for k, v in knob_table.items():
            if not v:
                raise ValueError(f"knob '{k}' of op '{name}' needs at least one choice.")

        def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
            if name in self._ops:
                raise ValueError(f"an op named '{name}' is already registered.")
            self._ops[name] = OpInfo(
                name=name,
                family=family,
                arity=arity,
                factory=factory,
                knobs=knob_table,
                description=description or (factory.__doc__ or "").strip().split("\n")[0],
                near_identity=near_identity,
            )
            return factory

        return decorator

    def unregister(self, name: str) -> None:
        self._ops.pop(name, None)

    def get(self, name: str) -> OpInfo:
        try:
            return self._ops[name]
        except KeyError:
            raise SpecError(
                f"unknown op '{name}'." + close_matches(name, self._ops)
                + " Run 'hadanas ops' to list the registered ops."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._ops

    def create(self, name: str, C: int, stride: int = 1, **knobs: KnobValue) -> nn.Module:
        info = self.get(name)
        merged = info.default_knobs()
        problem = info.check_knobs(knobs)
        if problem:
            raise SpecError(problem)
        merged.update(knobs)
        return info.factory(C, stride, **merged)

    def list(
        self, pattern: str = "*", *, family: str | None = None, arity: int | None = None
    ) -> list[str]:
        return sorted(
            n
            for n, info in self._ops.items()
            if fnmatch.fnmatch(n, pattern)
            and (family is None or info.family == family)
            and (arity is None or info.arity == arity)
        )

    def infos(self) -> list[OpInfo]:
        return [self._ops[n] for n in sorted(self._ops)]


default_registry = OpRegistry()


def register_op(
    name: str,
    *,
    family: str,
    arity: int = 1,
    knobs: Mapping[str, Sequence[KnobValue]] | None = None,
    description: str = "",
    near_identity: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register an operator factory ``(C, stride, **knobs) -> nn.Module`` in the default registry.

    Example::

        @register_op("my_gate", family="gating", knobs={"reduction": (4, 8)})
        def my_gate(C: int, stride: int = 1, *, reduction: int = 4) -> nn.Module:
            ...
    """
    return default_registry.register(
        name,
        family=family,
        arity=arity,
        knobs=knobs,
        description=description,
        near_identity=near_identity,
    )


def create_op(name: str, C: int, stride: int = 1, **knobs: KnobValue) -> nn.Module:
    """Build the registered op ``name`` with ``C`` channels."""
    return default_registry.create(name, C, stride, **knobs)


def list_ops(
    pattern: str = "*", *, family: str | None = None, arity: int | None = None
) -> list[str]:
    """Names of registered ops matching a glob ``pattern``, a family and an arity."""
    return default_registry.list(pattern, family=family, arity=arity)


def get_op(name: str) -> OpInfo:
    return default_registry.get(name)
