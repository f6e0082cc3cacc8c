"""The built-in operators. Importing this package registers them in the default registry."""

from __future__ import annotations

from hadanas.spaces.ops import conventional, fusion, gating, higher_order, masking, pairwise

__all__ = ["conventional", "fusion", "gating", "higher_order", "masking", "pairwise"]
