"""Shared pieces of the fuzz tests: input counters, hypothesis settings, error checks."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Inputs tried per fuzz target in this session (printed at the end of the run).
TRIED: Counter[str] = Counter()


def tried(target: str) -> None:
    TRIED[target] += 1


def fuzz_settings(max_examples: int) -> settings:
    """Modest, derandomised runs (the suite stays fast and reproducible); no deadline on a
    shared, loaded machine. HADANAS_FUZZ_SCALE multiplies the example counts for long runs."""
    scale = float(os.environ.get("HADANAS_FUZZ_SCALE", "1"))
    return settings(max_examples=max(1, int(max_examples * scale)), deadline=None, derandomize=True,
                    database=None, suppress_health_check=list(HealthCheck))


def write_counts(path: str | Path) -> None:
    Path(path).write_text(json.dumps(dict(sorted(TRIED.items())), indent=1) + "\n", encoding="utf-8")


def one_line(message: str) -> str:
    """Assert a user-facing error is one short line without a traceback; return it."""
    assert message.strip(), "empty error message"
    assert "\n" not in message.strip(), f"multi-line error: {message!r}"
    assert "Traceback" not in message, message
    assert len(message) < 2500, f"error message of {len(message)} characters"
    return message


# JSON values of every type, nested a little.
JSON_LEAF = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
             | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
JSON = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)

#: Values chosen to hit limits: out-of-range and huge numbers, wrong types, empty things.
ADVERSARIAL = st.sampled_from([
    None, True, False, 0, -1, 1, 2, 3, 7, 33, 65, 4096, 4097, 10**6, 2**31, 2**63, 2**64 + 1, 10**30,
    -(2**63), 0.5, 1.0, 16.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e308, "", " ", "16",
    "conv_3x3", "conv3x3", "sum", "film", "skip", "image", "vector", "\x00", "\udcff", "é" * 3, "a" * 300,
    [], [[]], {}, {"": None}, [16, 32], [0], [-16], [4097], ["image"], ["vector"], ["image", "image"],
    [{"src": 0, "op": "skip"}], list(range(40)),
]) | JSON


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indices) into a JSON tree, the root first."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += paths(v, (*prefix, i))
    return out


def get_at(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def deep(depth: int, kind: str = "list") -> Any:
    """A value nested ``depth`` levels (lists or dicts), built without recursion."""
    v: Any = 0
    for _ in range(depth):
        v = [v] if kind == "list" else {"a": v}
    return v
