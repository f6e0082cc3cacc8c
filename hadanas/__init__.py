"""hadanas: multi-objective neural architecture search with Hadamard-product primitives."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(directory: Any) -> Any:
    """Rebuild an exported architecture (``hadanas export``) from spec + safetensors."""
    from hadanas.search._export import load as _load

    return _load(directory)
