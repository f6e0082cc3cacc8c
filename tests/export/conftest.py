"""Fixtures of the export tests: registry-driven single-op networks, real digits inputs,
the shared tiny search opened as a study, and a writable copy of its store.

A test taking ``op_format`` is parametrised over every registered op x every format;
``KNOWN_GAPS`` lists the (format, op) pairs that cannot be exported today, each with the
reason and the minimal fix, and exactly those cases are strict expected failures, so a
fixed gap fails the suite until its entry is removed. A test taking ``known_gap`` runs
once per entry. Helpers reach the tests through the ``kit`` fixture.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from hadanas.spaces import ArchSpec, OpInfo, build_model, default_registry

IMAGE = (1, 8, 8)  # digits
VECTOR = (6,)
FORMATS = ("safetensors", "torchscript", "onnx", "code")

KNOWN_GAPS: dict[tuple[str, str], str] = {}


def require(condition: bool, reason: str) -> None:
    """Skip on a developer machine, fail in CI (CI=true), when ``condition`` is false."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "op_format" in metafunc.fixturenames:
        cases = []
        for info in default_registry.infos():
            for fmt in FORMATS:
                gap = KNOWN_GAPS.get((fmt, info.name))
                marks = [pytest.mark.xfail(strict=True, raises=AssertionError, reason=gap)] if gap else []
                cases.append(pytest.param((info.name, fmt), marks=marks, id=f"{info.name}-{fmt}"))
        metafunc.parametrize("op_format", cases)
    if "known_gap" in metafunc.fixturenames:
        gaps = sorted(KNOWN_GAPS)
        metafunc.parametrize("known_gap", gaps, ids=[f"{op}-{fmt}" for fmt, op in gaps])


def onnx_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def knob_combos(info: OpInfo) -> list[dict[str, Any]]:
    keys = sorted(info.knobs)
    return [dict(zip(keys, v)) for v in itertools.product(*(info.knobs[k] for k in keys))] or [{}]


def op_spec(info: OpInfo) -> ArchSpec:
    """A two-stage network that uses ``info`` with every combination of its knobs.

    A unary op is chained on edges (node k = op(node k-1) + skip(input)); a binary op is the
    combine of every node and, with a second (vector) input, the input fusion too.
    """
    cell = []
    for k, knobs in enumerate(knob_combos(info)):
        if info.arity == 1:
            first = {"src": k, "op": info.name, **({"knobs": knobs} if knobs else {})}
            edges = [first] if k == 0 else [first, {"src": 0, "op": "skip"}]
            cell.append({"combine": "sum", "edges": edges})
        else:
            edges = [{"src": k, "op": "conv_1x1"}, {"src": 0, "op": "skip"}]
            cell.append({"combine": info.name, "edges": edges,
                         **({"combine_knobs": knobs} if knobs else {})})
    data: dict[str, Any] = {"stages": [8], "cells_per_stage": 1, "cell": cell}
    if info.arity == 2:
        data.update(inputs=["image", "vector"], input_fusion=info.name)
    return ArchSpec.from_dict(data)


def shapes_of(spec: ArchSpec) -> list[tuple[int, ...]]:
    return [IMAGE, VECTOR] if len(spec.inputs) == 2 else [IMAGE]


def perturbed_model(spec: ArchSpec, seed: int = 0) -> torch.nn.Module:
    """The network with every parameter and BN statistic moved off its initial value, so that
    zero-initialised gates and near-identity terms take part in the comparison."""
    torch.manual_seed(seed)
    model = build_model(spec, shapes_of(spec), 10)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
    return model.eval()


@pytest.fixture(scope="session")
def digits_batch() -> torch.Tensor:
    """32 real test images of the digits dataset, (32, 1, 8, 8)."""
    from hadanas.trainers import load_dataset

    return load_dataset("digits", 0).inputs["test"][0][:32].clone()


def inputs_for(spec: ArchSpec, images: torch.Tensor) -> list[torch.Tensor]:
    xs = [images]
    if len(spec.inputs) == 2:
        xs.append(torch.randn(images.shape[0], *VECTOR, generator=torch.Generator().manual_seed(7)))
    return xs


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers above, for the test modules (which cannot import a conftest by name)."""
    return SimpleNamespace(
        FORMATS=FORMATS, KNOWN_GAPS=KNOWN_GAPS, IMAGE=IMAGE, VECTOR=VECTOR, require=require,
        onnx_available=onnx_available, knob_combos=knob_combos, op_spec=op_spec,
        shapes_of=shapes_of, perturbed_model=perturbed_model, inputs_for=inputs_for,
    )


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """Tiny tensors run faster on one thread on a small shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def study(tiny_search: dict) -> Any:
    from hadanas.search import load_study, open_storage

    return load_study(open_storage(tiny_search["storage"], create=False), tiny_search["study"])


@pytest.fixture(scope="session")
def front_trial(study: Any) -> int:
    """The most accurate trial on the front of the tiny search."""
    from hadanas.search import front_trials

    front = front_trials(study)
    assert front, "the tiny search has an empty front"
    return max(front, key=lambda t: t.user_attrs["val_accuracy"]).number


@pytest.fixture(scope="session")
def edited_store(tiny_search: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A copy of the tiny search's store with one FAIL trial and one infeasible trial added.

    Returns ``{"storage", "study", "failed": N, "infeasible": M}``; the original store is
    never written.
    """
    import optuna

    from hadanas.search import load_study, open_storage

    d = tmp_path_factory.mktemp("edited-store")
    src_path = tiny_search["storage"].split(":///", 1)[1]
    dst_path = d / "hadanas.db"
    with sqlite3.connect(src_path) as src, sqlite3.connect(dst_path) as dst:
        src.backup(dst)
    url = f"sqlite:///{dst_path}"
    s = load_study(open_storage(url, create=False), tiny_search["study"])
    donor = s.trials[0]
    dists = donor.distributions
    failed = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, params=donor.params, distributions=dists,
        user_attrs={"fail_reason": "ValueError: injected by the test"})
    infeasible = optuna.trial.create_trial(
        values=[0.0, 1e12], params=donor.params, distributions=dists,
        user_attrs={**donor.user_attrs, "status": "infeasible", "epochs": 0,
                    "constraints": [1e12], "weights_artifact": None})
    s.add_trial(failed)
    s.add_trial(infeasible)
    n = len(s.trials)
    return {"storage": url, "study": tiny_search["study"], "failed": n - 2, "infeasible": n - 1}


@pytest.fixture
def repo() -> Path:
    return Path(__file__).resolve().parents[2]
