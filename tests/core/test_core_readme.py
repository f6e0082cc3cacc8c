"""The README's code blocks run as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _block(after_heading: str) -> str:
    section = README.split(after_heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_custom_operator_example_registers_and_searches() -> None:
    from hadanas.spaces import build_model, default_registry, get_op

    ns: dict = {}
    try:
        exec(compile(_block("## Your own operator"), "README", "exec"), ns)
        assert get_op("tanh_gate").family == "gating"
        space = ns["space"]
        for seed in range(4):
            spec = space.sample(seed)
            model = build_model(spec, [(1, 8, 8)], 10)
            assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
        op = default_registry.create("tanh_gate", 4, 2, kernel=5)
        assert op(torch.randn(1, 4, 7, 7)).shape == (1, 4, 4, 4)
    finally:
        default_registry.unregister("tanh_gate")


def test_spaces_snippet_runs() -> None:
    ns: dict = {}
    code = _block("Spaces, specs and models without a search:").replace("\nprint(", "\nout = (")
    exec(compile(code, "README", "exec"), ns)
    spec, costs = ns["spec"], ns["out"][2]
    assert costs.params > 0 and costs.flops > 0 and len(spec.fingerprint()) == 16
