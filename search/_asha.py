"""Asynchronous successive halving (ASHA, Li et al., 2020) on one fidelity metric.

Rungs sit at ``min_epochs * eta**k`` epochs. A trial reaching a rung continues only if its
validation accuracy is at least the ``1 - 1/eta`` quantile of the accuracies recorded at
that rung so far (itself included); otherwise it stops and keeps its last accuracy. Costs
are static, so stopping one trial early never changes another's objectives: the
multi-objective bookkeeping stays exact.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["RungBoard", "rung_epochs"]


def rung_epochs(min_epochs: int, eta: int, max_epochs: int) -> list[int]:
    """Epochs at which a decision is taken (strictly below ``max_epochs``)."""
    rungs, r = [], min_epochs
    while r < max_epochs:
        rungs.append(r)
        r *= eta
    return rungs


class RungBoard:
    """The shared record of accuracies per rung (a Ray actor when trials run on Ray)."""

    def __init__(self, rungs: Iterable[int], eta: int) -> None:
        self.rungs = sorted(set(int(r) for r in rungs))
        self.eta = eta
        self.records: dict[int, dict[str, float]] = {r: {} for r in self.rungs}

    def seed(self, histories: Iterable[tuple[str, list[float], list[int] | None]]) -> int:
        """Record earlier trials (resume): ``(key, accuracies per epoch, epochs or None)``."""
        n = 0
        for key, history, epochs in histories:
            points = epochs or list(range(1, len(history) + 1))
            for e, acc in zip(points, history):
                if e in self.records:
                    self.records[e][key] = float(acc)
                    n += 1
        return n

    def report(self, key: str, epoch: int, accuracy: float) -> bool:
        """Record ``accuracy`` at ``epoch``; return True to continue, False to stop."""
        if epoch not in self.records:
            return True
        rung = self.records[epoch]
        rung[key] = float(accuracy)
        values = np.fromiter(rung.values(), dtype=float)
        cutoff = float(np.quantile(values, 1.0 - 1.0 / self.eta))
        return accuracy >= cutoff

    def counts(self) -> dict[int, int]:
        return {r: len(v) for r, v in self.records.items()}
