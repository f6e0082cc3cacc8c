"""Search strategies of hadanas's own, as Optuna samplers.

:class:`LocalSearchSampler` (``--sampler local``, the default with one objective) is a
best-first local search over categorical search spaces:

1. ``n_startup_trials`` uniformly random configurations that were not seen before;
2. then, repeatedly, the best evaluated configuration of the current *segment* that still
   has an unseen one-choice neighbour (the same parameters with one of them changed) is
   expanded: among its unseen neighbours it proposes the one a surrogate ranks highest, or,
   with probability ``explore``, a random one. The surrogate is an additive model, a ridge
   regression on one-hot choices fitted to every evaluated trial, each weighted by
   ``exp(-d / locality)`` where ``d`` is its Hamming distance to the expanded
   configuration (a local model of the landscape around it);
3. when the segment's best has not improved for ``patience`` proposals, or none of the
   segment's configurations has an unseen neighbour left, a new segment starts from an
   unseen random configuration (a restart: the earlier segments' configurations stay
   seen, and still teach the surrogate, but are no longer expanded).

With several objectives the incumbents are all evaluated trials by non-dominated rank (the
front first, its members in random order), the neighbour is drawn at random and there are
no restarts (Pareto local search).

It never proposes a configuration that was already evaluated, is being evaluated, or was
proposed to a trial that has not reported yet, while unseen ones remain. In a conditional
space (an op's knobs are asked only when the op is chosen) give ``resolve``: it maps a
parameter dict to the parameters the objective would actually ask (drawing the ones that
are missing) and a key of the configuration they make (hadanas passes
``SearchSpace.resolve``, whose key is the architecture's fingerprint); configurations are
then compared by that key, so a neighbour that differs only in an unused knob, or that
makes the same architecture, counts as seen. It keeps no
state of its own between calls: every proposal is rebuilt from the trials in the study
(their parameters, values, and the proposal and segment it wrote to each trial's system
attributes), so a resumed study or several processes asking at once behave as one. Its
random stream is derived from ``(seed, trial number)``, so a run is reproducible.

Parameters that are not categorical (floats, integers) are drawn uniformly at random.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = ["LocalSearchSampler"]

_PROPOSAL_KEY = "hadanas:proposal"
_SEGMENT_KEY = "hadanas:segment"
_MAX_RANDOM_DRAWS = 2000
_MAX_ENUMERATED = 200_000
_RECENT_ROWS = 2000  # the surrogate looks at the latest evaluated trials,
_MAX_ROWS = 500  # and learns from those nearest the expanded one


def _key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


#: ``resolve(params, draw) -> (the parameters that are used, a hashable key of the configuration)``;
#: ``draw(name, choices)`` picks a value for a parameter ``params`` lacks.
Resolver = Callable[[dict[str, Any], "Callable[[str, list[Any]], Any] | None"], tuple[dict[str, Any], Any]]


class LocalSearchSampler(optuna.samplers.BaseSampler):
    """Best-first local search over one-choice mutations, surrogate-ordered; see the module."""

    def __init__(self, *, n_startup_trials: int = 10, explore: float = 0.0, ridge: float = 1.0,
                 patience: int | None = 20, locality: float | None = 1.0,
                 seed: int | None = None,
                 constraints_func: Callable[[FrozenTrial], Sequence[float]] | None = None,
                 resolve: Resolver | None = None) -> None:
        if n_startup_trials < 1:
            raise ValueError(f"n_startup_trials must be >= 1, but got {n_startup_trials}.")
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], but got {explore}.")
        self.n_startup_trials = n_startup_trials
        self.explore = explore
        self.ridge = ridge
        self.patience = patience
        self.locality = locality
        self.constraints_func = constraints_func
        self.resolve = resolve
        self._seed = int(np.random.SeedSequence(seed).entropy % (2**63)) if seed is None else int(seed)
        self._random = optuna.samplers.RandomSampler(seed=self._seed)
        # Caches of what finished trials (which never change) contribute; never state.
        self._space_memo: tuple[Any, set[int], dict[str, Any], set[str]] | None = None
        self._trial_memo: tuple[Any, dict[int, Any]] | None = None

    def reseed_rng(self) -> None:
        self._seed = int(np.random.SeedSequence().entropy % (2**63))
        self._random.reseed_rng()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_space_memo"] = state["_trial_memo"] = None
        return state

    def _rng(self, number: int) -> np.random.Generator:
        return np.random.default_rng([self._seed, number])

    def _resolve(self, params: dict[str, Any],
                 rng: np.random.Generator | None = None) -> tuple[dict[str, Any], Any]:
        """The used parameters of ``params`` and the key that identifies the configuration."""
        if self.resolve is None:
            return params, _key(params)
        draw = None if rng is None else (lambda name, choices: choices[int(rng.integers(len(choices)))])
        try:
            used, key = self.resolve(dict(params), draw)
        except Exception:  # a configuration the resolver cannot read: compare it as given
            return params, _key(params)
        return used, ("resolved", key)

    # --- Optuna interface ------------------------------------------------------------
    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """Every categorical parameter the trials used, with one unchanging set of choices."""
        tag = (id(study._storage), study._study_id)
        if self._space_memo is None or self._space_memo[0] != tag:
            self._space_memo = (tag, set(), {}, set())
        _, done, space, conflict = self._space_memo

        def add(t: FrozenTrial, space: dict[str, Any], conflict: set[str]) -> None:
            for name, dist in t.distributions.items():
                if not isinstance(dist, CategoricalDistribution) or name in conflict:
                    continue
                known = space.get(name)
                if known is None:
                    space[name] = dist
                elif known is not dist and not (known.choices == dist.choices and tuple(
                        map(type, known.choices)) == tuple(map(type, dist.choices))):
                    conflict.add(name)
                    del space[name]

        unfinished = []
        for t in study.get_trials(deepcopy=False):
            if t.state.is_finished():
                if t._trial_id not in done:  # a finished trial never changes: read it once
                    done.add(t._trial_id)
                    add(t, space, conflict)
            else:
                unfinished.append(t)
        result, extra = dict(space), set(conflict)
        for t in unfinished:
            add(t, result, extra)
        return dict(sorted(result.items()))

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        trials = study.get_trials(deepcopy=False)
        proposal, segment = self._propose(study, trial, trials, search_space)
        # Optuna takes relative parameters of the relative search space only; a knob no trial
        # has asked yet is drawn independently when the objective asks it.
        proposal = {k: v for k, v in proposal.items() if k in search_space}
        study._storage.set_trial_system_attr(trial._trial_id, _SEGMENT_KEY, segment)
        study._storage.set_trial_system_attr(trial._trial_id, _PROPOSAL_KEY, proposal)
        return proposal

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    # --- the strategy ----------------------------------------------------------------
    def _score(self, study: optuna.Study, t: FrozenTrial) -> tuple[float, ...] | None:
        """Objective values to minimise, (inf, ...) when infeasible, None when unusable."""
        if t.state != TrialState.COMPLETE or t.values is None:
            return None
        if not all(math.isfinite(v) for v in t.values):
            return None
        if self.constraints_func is not None and any(c > 0 for c in self.constraints_func(t)):
            return tuple(math.inf for _ in t.values)
        return tuple(-v if d == StudyDirection.MAXIMIZE else v
                     for v, d in zip(t.values, study.directions))

    def _propose(self, study: optuna.Study, trial: FrozenTrial, trials: list[FrozenTrial],
                 space: dict[str, BaseDistribution]) -> tuple[dict[str, Any], int]:
        rng = self._rng(trial.number)
        names = list(space)
        seen: set[tuple[tuple[str, Any], ...]] = set()
        evaluated: list[tuple[dict[str, Any], tuple[float, ...], int, int]] = []  # params, score, segment, number
        proposed: list[tuple[int, int]] = []  # (segment, number) of every other trial
        tag = (id(study._storage), study._study_id, tuple(names))
        if self._trial_memo is None or self._trial_memo[0] != tag:
            self._trial_memo = (tag, {})
        memo = self._trial_memo[1]
        for t in trials:
            if t.number == trial.number:
                continue
            hit = memo.get(t._trial_id)
            if hit is not None:
                key, params, score, seg = hit
                seen.add(key)
                proposed.append((seg, t.number))
                if score is not None:
                    evaluated.append((params, score, seg, t.number))
                continue
            seg = t.system_attrs.get(_SEGMENT_KEY, 0)
            seg = seg if isinstance(seg, int) else 0
            params = {k: v for k, v in t.params.items() if k in space}
            if t.state in (TrialState.RUNNING, TrialState.WAITING):
                pending = t.system_attrs.get(_PROPOSAL_KEY) or t.system_attrs.get("fixed_params")
                whole = dict(t.params)
                if isinstance(pending, dict):
                    params = {**{k: v for k, v in pending.items() if k in space}, **params}
                    whole = {**pending, **whole}
                if params:
                    seen.add(self._resolve(whole if self.resolve else params)[1])
                    proposed.append((seg, t.number))
                continue
            if not params:
                continue
            key = self._resolve(dict(t.params) if self.resolve else params)[1]
            seen.add(key)
            proposed.append((seg, t.number))
            score = self._score(study, t)
            if score is not None:
                evaluated.append((params, score, seg, t.number))
            if t.state.is_finished():
                memo[t._trial_id] = (key, params, score, seg)

        segment = max((s for s, _ in proposed), default=0)
        if len(evaluated) < self.n_startup_trials:
            return self._random_unseen(names, space, seen, rng), segment
        current = [e for e in evaluated if e[2] == segment]
        if current and self.patience is not None and len(current[0][1]) == 1:
            best = min(current, key=lambda e: (e[1][0], e[3]))
            since = sum(1 for s, n in proposed if s == segment and n > best[3])
            if since >= self.patience:
                current = []
        if current:
            proposal = self._neighbour([(p, s) for p, s, _, _ in current], seen, space, rng,
                                       [(p, s) for p, s, _, _ in evaluated])
            if proposal is not None:
                return proposal, segment
        # A new segment: restart from a random configuration.
        return self._random_unseen(names, space, seen, rng), segment + 1

    def _random_unseen(self, names: list[str], space: dict[str, BaseDistribution],
                       seen: set[Any], rng: np.random.Generator) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for _ in range(_MAX_RANDOM_DRAWS):
            params = {n: space[n].choices[rng.integers(len(space[n].choices))]  # type: ignore[attr-defined]
                      for n in names}
            used, key = self._resolve(params, rng)
            if key not in seen:
                return used
        # Nearly every configuration was seen: in a small space, list the unseen ones.
        if math.prod(len(space[n].choices) for n in names) <= _MAX_ENUMERATED:  # type: ignore[attr-defined]
            unseen: dict[Any, dict[str, Any]] = {}
            for combo in itertools.product(*(space[n].choices for n in names)):  # type: ignore[attr-defined]
                used, key = self._resolve(dict(zip(names, combo)))
                if key not in seen:
                    unseen.setdefault(key, used)
            if unseen:
                options = list(unseen.values())
                return options[int(rng.integers(len(options)))]
        return params

    def _neighbour(self, evaluated: list[tuple[dict[str, Any], tuple[float, ...]]], seen: set[Any],
                   space: dict[str, BaseDistribution], rng: np.random.Generator,
                   data: list[tuple[dict[str, Any], tuple[float, ...]]]) -> dict[str, Any] | None:
        scores = np.array([s for _, s in evaluated])
        n_obj = scores.shape[1]
        if n_obj == 1:
            # Best first; equal scores keep trial order (the earlier incumbent first).
            order = np.argsort(scores[:, 0], kind="stable")
        else:
            from hadanas.search._pareto import nondominated_sort_2d

            rank = nondominated_sort_2d(scores)
            order = np.lexsort((rng.random(len(scores)), rank))
        for i in order:
            parent = evaluated[i][0]
            if not math.isfinite(scores[i][0]):
                break  # infeasible incumbents come last: try random configurations instead
            cands = []
            keys: set[Any] = set()
            for name, dist in space.items():
                if name not in parent:
                    continue
                for c in dist.choices:  # type: ignore[attr-defined]
                    if c == parent[name] and type(c) is type(parent[name]):
                        continue
                    nb, key = self._resolve({**parent, name: c}, rng)
                    if key not in seen and key not in keys:
                        keys.add(key)
                        cands.append(nb)
            if not cands:
                continue
            model = self._surrogate(data, space, parent) if n_obj == 1 else None
            if model is None or rng.random() < self.explore:
                return cands[int(rng.integers(len(cands)))]
            pred = np.array([model(c) for c in cands])
            best = np.flatnonzero(pred <= pred.min() + 1e-12)
            return cands[int(best[rng.integers(len(best))])]
        return None

    def _surrogate(self, evaluated: list[tuple[dict[str, Any], tuple[float, ...]]],
                   space: dict[str, BaseDistribution],
                   center: dict[str, Any] | None = None) -> Callable[[dict[str, Any]], float] | None:
        """An additive model of the (minimised) score: ridge regression on one-hot choices."""
        index: dict[tuple[str, Any], int] = {}
        for name, dist in space.items():
            if len(dist.choices) > 1:  # type: ignore[attr-defined]
                for c in dist.choices:  # type: ignore[attr-defined]
                    index[(name, c)] = len(index)
        rows = [(p, s[0]) for p, s in evaluated[-_RECENT_ROWS:] if math.isfinite(s[0])]
        if not index or len(rows) < 2:
            return None

        def features(params: dict[str, Any]) -> np.ndarray:
            x = np.zeros(len(index))
            x[[j for j in (index.get(k) for k in params.items()) if j is not None]] = 1.0
            return x

        if center is not None and self.locality:
            dist = np.array([sum(p.get(k) != v for k, v in center.items()) for p, _ in rows])
            if len(rows) > _MAX_ROWS:
                keep = np.sort(np.argsort(dist, kind="stable")[:_MAX_ROWS])
                rows, dist = [rows[i] for i in keep], dist[keep]
            sw = np.sqrt(np.exp(-dist / self.locality))
        else:
            rows = rows[-_MAX_ROWS:]
            sw = np.ones(len(rows))
        X = np.array([features(p) for p, _ in rows])
        y = np.array([s for _, s in rows])
        mu = np.average(y, weights=sw**2)
        scale = y.std() or 1.0
        yc = (y - mu) / scale * sw
        X = X * sw[:, None]
        n, d = X.shape
        lam = self.ridge
        if n < d:  # the dual form: an n x n system
            w = X.T @ np.linalg.solve(X @ X.T + lam * np.eye(n), yc)
        else:
            w = np.linalg.solve(X.T @ X + lam * np.eye(d), X.T @ yc)
        return lambda params: float(features(params) @ w)
