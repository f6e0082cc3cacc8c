"""Pareto mask and hypervolume against closed forms and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hadanas.search import hypervolume, pareto_mask, to_minimization


def brute_mask(p: np.ndarray) -> np.ndarray:
    n = len(p)
    return np.array([
        not any(np.all(p[j] <= p[i]) and np.any(p[j] < p[i]) for j in range(n) if j != i)
        for i in range(n)
    ])


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("seed", range(5))
def test_pareto_mask_matches_brute_force(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 6, size=(60, m)).astype(float)  # many ties and duplicates
    assert np.array_equal(pareto_mask(p), brute_mask(p))


def test_pareto_mask_simple_cases() -> None:
    p = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [2, 2]], dtype=float)
    assert pareto_mask(p).tolist() == [True, True, True, False, True]
    assert pareto_mask(np.zeros((0, 2))).tolist() == []


def test_to_minimization_negates_only_maximised_columns() -> None:
    v = np.array([[0.9, 100.0], [0.8, 50.0]])
    out = to_minimization(v, ["maximize", "minimize"])
    assert out.tolist() == [[-0.9, 100.0], [-0.8, 50.0]]


def test_hypervolume_closed_forms() -> None:
    assert hypervolume(np.array([[0.0, 0.0]]), [1.0, 1.0]) == pytest.approx(1.0)
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    # Explicit: union of [1,4]x[3,4], [2,4]x[2,4], [3,4]x[1,4] = 3 + 4 + 3 - overlaps = 6.
    assert hypervolume(pts, [4.0, 4.0]) == pytest.approx(6.0)
    # 3-D cube corner.
    assert hypervolume(np.array([[0.0, 0.0, 0.0]]), [2.0, 3.0, 4.0]) == pytest.approx(24.0)
    # Points outside the reference box contribute nothing.
    assert hypervolume(np.array([[5.0, 0.0]]), [4.0, 4.0]) == 0.0


def _grid_hv(p: np.ndarray, ref: np.ndarray, steps: int = 40) -> float:
    """Monte-Carlo-free brute force on a lattice of integer points."""
    axes = [np.arange(steps) + 0.5 for _ in ref]
    count = 0
    for cell in itertools.product(*axes):
        c = np.array(cell) * ref / steps
        if np.any(np.all(p <= c, axis=1)):
            count += 1
    return count * np.prod(ref) / steps ** len(ref)


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_matches_lattice_count(m: int) -> None:
    rng = np.random.default_rng(m)
    # Points on a lattice of 1/10 so the lattice count is exact.
    p = rng.integers(0, 10, size=(12, m)) / 10.0
    ref = np.ones(m)
    assert hypervolume(p, ref) == pytest.approx(_grid_hv(p, ref, steps=10 if m == 3 else 40))


def test_front_tracker_counts_distinct_points() -> None:
    from hadanas.search._pareto import FrontTracker

    tracker = FrontTracker(np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [3.0, 3.0]]))
    assert len(tracker) == 2
    assert not tracker.add([1.0, 2.0])  # a duplicate trial's point
    assert tracker.add([0.5, 0.5]) and len(tracker) == 1
