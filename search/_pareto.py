"""Pareto fronts and hypervolume, pure NumPy, minimisation only.

Maximised objectives are negated in exactly one place: :func:`to_minimization`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence

import numpy as np

__all__ = ["to_minimization", "pareto_mask", "hypervolume", "nondominated_sort_2d", "FrontTracker",
           "first_of_each"]


def first_of_each(indices: Iterable[int], number: Callable[[int], int],
                  key: Callable[[int], Hashable]) -> list[int]:
    """Of ``indices``, the one with the lowest ``number`` for each ``key``, in ``number`` order:
    a front lists an architecture (or a point) once, as its first trial, not its duplicates."""
    out, seen = [], set()
    for i in sorted(indices, key=number):
        k = key(i)
        if k not in seen:
            seen.add(k)
            out.append(i)
    return out


def to_minimization(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Return ``values`` (n, m) with every ``"maximize"`` column negated."""
    v = np.asarray(values, dtype=float).reshape(len(values), len(directions))
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return v * sign


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (n, m), minimisation.

    Duplicated points are all kept. Two objectives: O(n log n) sort and sweep; more:
    a vectorised O(n^2 m) pass over candidates.
    """
    p = np.asarray(points, dtype=float)
    n = len(p)
    if n == 0:
        return np.zeros(0, dtype=bool)
    if p.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n, m), but got shape {p.shape}.")
    if p.shape[1] == 1:
        return p[:, 0] == p[:, 0].min()
    if p.shape[1] == 2:
        order = np.lexsort((p[:, 1], p[:, 0]))  # by f0, then f1
        mask = np.zeros(n, dtype=bool)
        best1 = np.inf
        best0_at_best1 = np.inf
        for i in order:
            f0, f1 = p[i]
            if f1 < best1:
                mask[i] = True
                best1, best0_at_best1 = f1, f0
            elif f1 == best1 and f0 == best0_at_best1:
                mask[i] = True  # exact duplicate of a front point
        return mask
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        if not mask[i]:
            continue
        dominated = np.all(p[i] <= p, axis=1) & np.any(p[i] < p, axis=1)
        mask[dominated] = False
    return mask


def nondominated_sort_2d(points: np.ndarray) -> np.ndarray:
    """Rank of each point (0 = front) by repeated front peeling."""
    p = np.asarray(points, dtype=float)
    rank = np.full(len(p), -1)
    remaining = np.arange(len(p))
    r = 0
    while len(remaining):
        m = pareto_mask(p[remaining])
        rank[remaining[m]] = r
        remaining = remaining[~m]
        r += 1
    return rank


def hypervolume(points: np.ndarray, reference: Sequence[float]) -> float:
    """Volume dominated by ``points`` (n, m) and bounded by ``reference`` (minimisation).

    Points not strictly better than the reference in every objective contribute nothing.
    Exact: a sweep for m = 2, recursive slicing over the last objective for m > 2.
    """
    ref = np.asarray(reference, dtype=float)
    p = np.asarray(points, dtype=float).reshape(-1, len(ref))
    p = p[np.all(p < ref, axis=1)]
    if len(p) == 0:
        return 0.0
    p = p[pareto_mask(p)]
    return float(_hv(p, ref))


def _hv(p: np.ndarray, ref: np.ndarray) -> float:
    m = p.shape[1]
    if m == 1:
        return float(ref[0] - p[:, 0].min())
    if m == 2:
        order = np.argsort(p[:, 0])
        vol, prev1 = 0.0, ref[1]
        for i in order:
            if p[i, 1] < prev1:
                vol += (ref[0] - p[i, 0]) * (prev1 - p[i, 1])
                prev1 = p[i, 1]
        return vol
    # Slice along the last objective: between consecutive levels, the dominated region
    # is the (m-1)-D hypervolume of the points at or below that level.
    order = np.argsort(p[:, -1])
    p = p[order]
    vol = 0.0
    for k in range(len(p)):
        upper = p[k + 1, -1] if k + 1 < len(p) else ref[-1]
        depth = upper - p[k, -1]
        if depth > 0:
            sub = p[: k + 1, :-1]
            vol += depth * _hv(sub[pareto_mask(sub)], ref[:-1])
    return vol


class FrontTracker:
    """The non-dominated set of a growing list of points (minimisation), updated per point.

    Adding a point costs O(front size), so progress lines stay cheap in a study of 10k trials.
    """

    def __init__(self, points: np.ndarray | None = None) -> None:
        self.front: list[np.ndarray] = []
        if points is not None and len(points):
            pts = np.asarray(points, dtype=float)
            self.front = list(np.unique(pts[pareto_mask(pts)], axis=0))  # equal points once

    def add(self, point: Sequence[float]) -> bool:
        """Add ``point``; True when it joins the front (a point equal to one on it, such as a
        duplicate trial's, does not: the front counts distinct points, as its tables do)."""
        p = np.asarray(point, dtype=float)
        if any(np.all(q <= p) for q in self.front):  # dominated by, or equal to, a front point
            return False
        self.front = [q for q in self.front if not (np.all(p <= q) and np.any(p < q))]
        self.front.append(p)
        return True

    def __len__(self) -> int:
        return len(self.front)
