"""Shared fixtures and registry-driven parametrisation for the ``hadanas.spaces`` tests.

Any test that takes an argument named ``op_case`` (every registered op, every knob
combination), ``unary_case``, ``binary_case`` or ``near_identity_case`` is parametrised
over :data:`hadanas.spaces.default_registry` at collection time, so an op registered
in the library is tested the day it is registered.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from hadanas.spaces import OpInfo, default_registry


@dataclass(frozen=True)
class OpCase:
    """One op with one full assignment of its knobs."""

    info: OpInfo
    knobs: tuple[tuple[str, Any], ...]

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def arity(self) -> int:
        return self.info.arity

    def create(self, C: int, stride: int = 1) -> torch.nn.Module:
        return default_registry.create(self.info.name, C, stride, **dict(self.knobs))

    def __str__(self) -> str:
        return "-".join([self.info.name, *(f"{k}={v}" for k, v in self.knobs)])


def op_cases(infos: list[OpInfo]) -> list[OpCase]:
    """Every op of ``infos`` with every combination of its knob values."""
    cases = []
    for info in infos:
        keys = sorted(info.knobs)
        for values in itertools.product(*(info.knobs[k] for k in keys)):
            cases.append(OpCase(info, tuple(zip(keys, values))))
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    infos = default_registry.infos()
    table = {
        "op_case": op_cases(infos),
        "unary_case": op_cases([i for i in infos if i.arity == 1]),
        "binary_case": op_cases([i for i in infos if i.arity == 2]),
        # Near-identity is a property of the op at its default knobs and at every other
        # knob value, so all combinations are checked.
        "near_identity_case": op_cases([i for i in infos if i.near_identity]),
    }
    for arg, cases in table.items():
        if arg in metafunc.fixturenames:
            metafunc.parametrize(arg, cases, ids=[str(c) for c in cases])


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Run the tiny tensors of these tests on one thread.

    On a small shared machine, two OpenMP threads spinning on 8-channel convolutions
    are slower than one, and much slower when another process holds a core.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
