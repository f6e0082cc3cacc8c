"""Ablation of the operator families: the same search budget on ``full``, ``conventional`` and
each ``no-<family>`` space, over several seeds, each run into its own study of one store.

Hypervolumes are computed on normalised objectives so that spaces and datasets read alike:
accuracy becomes ``1 - accuracy`` and every cost is divided by the largest value of that cost
seen in any run of the ablation; the reference point is ``1`` for accuracy (accuracy 0) and
``1.1`` for each cost (110 % of the largest). Larger is better; the maximum is below 1.1.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hadanas.config import SearchConfig
from hadanas.exceptions import ConfigError

__all__ = ["AblationResult", "SpaceSummary", "ablation_spaces", "ablation_study_name", "run_ablation",
           "summarise_ablation", "format_ablation"]

#: Reference point of the normalised hypervolume: accuracy 0, costs at 110 % of the largest seen.
REF_ACCURACY = 1.0
REF_COST = 1.1


def ablation_spaces(two_inputs: bool) -> list[str]:
    """The default spaces of an ablation: the complete space first, then the baseline and one
    space per Hadamard family left out (the two-input variants for image + vector data)."""
    from hadanas.spaces import HADAMARD_FAMILIES

    prefix = "fusion-" if two_inputs else ""
    return ["fusion" if two_inputs else "full", f"{prefix}conventional",
            *(f"{prefix}no-{f.replace('_', '-')}" for f in HADAMARD_FAMILIES)]


def ablation_study_name(dataset: str, space: str, seed: int) -> str:
    """``ablate-<dataset>-<space>-s<seed>`` (characters other than letters, digits, ``.``,
    ``_`` and ``-`` in the dataset's name become ``_``)."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset).strip("_") or "data"
    return f"ablate-{clean}-{space}-s{seed}"


@dataclass
class SpaceSummary:
    space: str
    hypervolume: list[float]  # per seed, normalised
    best_accuracy: list[float]
    front_size: list[int]
    completed: list[int]
    wall_time_s: list[float]

    @staticmethod
    def _ms(v: Sequence[float]) -> tuple[float, float]:
        a = np.asarray(v, dtype=float)
        if len(a) == 0:
            return math.nan, math.nan
        return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else math.nan  # one seed: no spread

    @property
    def hv_mean_std(self) -> tuple[float, float]:
        return self._ms(self.hypervolume)

    @property
    def acc_mean_std(self) -> tuple[float, float]:
        return self._ms(self.best_accuracy)


@dataclass
class AblationResult:
    dataset: str
    seeds: list[int]
    spaces: list[str]
    objectives: list[str]
    studies: dict[tuple[str, int], str]  # (space, seed) -> study name
    skipped: list[str]  # studies that were already complete
    summaries: list[SpaceSummary]
    scale: list[float | None]  # per objective: the divisor of each cost (None for accuracy)
    reference: list[float]  # normalised reference point
    reference_natural: list[float]  # the same point in the objectives' own units
    share_space: str  # the space whose fronts the family shares describe
    family_share_front: dict[str, float]  # op slots per family on its fronts (sums to 1)
    family_share_all: dict[str, float]  # op slots per family over all its trials (sums to 1)
    family_trials_front: dict[str, float]  # fraction of front architectures using the family
    n_front: int  # distinct front architectures behind the shares
    report: Path | None = None
    wall_time_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; a missing number (no feasible trial, an unknown wall time) is None."""
        return _json_safe({
            "dataset": self.dataset, "seeds": self.seeds, "spaces": self.spaces,
            "objectives": self.objectives,
            "normalisation": {"scale": self.scale, "reference": self.reference,
                              "reference_natural": self.reference_natural},
            "studies": [{"space": s, "seed": k, "study": n} for (s, k), n in self.studies.items()],
            "skipped": self.skipped,
            "spaces_summary": [{
                "space": s.space, "hypervolume": s.hypervolume,
                "hypervolume_mean": s.hv_mean_std[0], "hypervolume_std": s.hv_mean_std[1],
                "best_accuracy": s.best_accuracy, "front_size": s.front_size,
                "completed": s.completed, "wall_time_s": s.wall_time_s,
            } for s in self.summaries],
            "family_share": {"space": self.share_space, "front": self.family_share_front,
                             "all_trials": self.family_share_all,
                             "front_architectures_using": self.family_trials_front,
                             "front_architectures": self.n_front},
            "report": str(self.report) if self.report else None,
            "wall_time_s": self.wall_time_s,
        })


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _check(base: SearchConfig, seeds: Sequence[int], spaces: Sequence[str] | None) -> tuple[list[str], bool]:
    """Validate everything before any store is touched; return the spaces and whether the
    data has two inputs."""
    from hadanas.spaces import get_space
    from hadanas.trainers import load_dataset

    if not seeds:
        raise ConfigError("an ablation needs at least one seed (--seeds N with N >= 1).")
    for seed in seeds:  # every seed is a valid search seed, before the first study runs
        base.replace(seed=seed)
    if "accuracy" not in base.objectives or len(base.objectives) < 2:
        raise ConfigError("an ablation's objectives must include accuracy and at least one cost "
                          f"(flops, params, latency), but got {','.join(base.objectives)}.")
    if base.benchmark_file is not None:
        raise ConfigError("an ablation trains its trials; --benchmark-file is not supported.")
    data = load_dataset(base.dataset, base.data_seed, base.subset)
    two = len(data.modalities) == 2
    names = list(spaces) if spaces else ablation_spaces(two)
    if len(set(names)) != len(names):
        raise ConfigError(f"--spaces lists a space twice: {','.join(names)}.")
    for name in names:
        space = get_space(name)  # unknown names: one line with the close matches
        if list(space.inputs) != list(data.modalities):
            raise ConfigError(
                f"dataset '{base.dataset}' has inputs {list(data.modalities)}, but space '{name}' "
                f"takes {list(space.inputs)}; "
                + ("use the fusion spaces (fusion, fusion-conventional, fusion-no-<family>)."
                   if two else "use the one-input spaces (full, conventional, no-<family>).")
            )
    return names, two


def _check_existing(study: Any, config: SearchConfig) -> None:
    """A stored study of the same name must have been run with the same budget."""
    stored = study.user_attrs.get("config") or {}

    def same(a: Any, b: Any) -> bool:
        return (list(a) == list(b)) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b

    for key in ("space", "dataset", "objectives", "epochs", "subset", "seed", "sampler", "data_seed",
                "batch_size", "lr", "weight_decay", "population", "max_flops", "max_params",
                "early_stopping", "eta", "min_epochs", "precision"):
        if key in stored and not same(stored[key], getattr(config, key)):
            raise ConfigError(
                f"study '{study.study_name}' was run with {key}={stored[key]!r}, not "
                f"{getattr(config, key)!r}; use the same budget to resume it, or another --storage."
            )


def run_ablation(base: SearchConfig, seeds: Sequence[int], spaces: Sequence[str] | None = None,
                 out: str | Path | None = None,
                 progress: Callable[[str], None] | None = None) -> AblationResult:
    """Run (or finish) every study of the ablation described by ``base`` (dataset, trials,
    epochs, objectives, storage, ...); studies already complete are skipped. Writes
    ``ablation.html`` (overlaid fronts) and ``ablation.json`` into ``out`` when given."""
    import optuna

    from hadanas.search._runner import _init_ray, release_workers, run_search
    from hadanas.search._store import open_storage

    t0 = time.perf_counter()
    seeds = [int(s) for s in seeds]
    names, _ = _check(base, seeds, spaces)
    say = progress or (lambda _m: None)
    if out is not None:  # fail now, not after the runs
        Path(out).mkdir(parents=True, exist_ok=True)
    storage = open_storage(base.storage)
    existing = {s.study_name: s for s in storage.get_all_studies()}
    plan = [(space, seed, ablation_study_name(base.dataset, space, seed))
            for seed in seeds for space in names]
    for _, _, study_name in plan:  # a mismatching stored budget stops the ablation before it runs
        if study_name in existing:
            st = optuna.load_study(study_name=study_name, storage=storage)
            _check_existing(st, base.replace(space=[s for s, _, n in plan if n == study_name][0],
                                             seed=[k for _, k, n in plan if n == study_name][0]))

    started_ray = False
    skipped: list[str] = []
    studies: dict[tuple[str, int], str] = {}
    wall: dict[tuple[str, int], float] = {}
    try:
        for i, (space, seed, study_name) in enumerate(plan, start=1):
            config = base.replace(space=space, seed=seed, study=study_name,
                                  resume=study_name in existing)
            studies[(space, seed)] = study_name
            if study_name in existing:
                st = optuna.load_study(study_name=study_name, storage=storage)
                done = len(st.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
                if done >= base.trials:
                    skipped.append(study_name)
                    wall[(space, seed)] = float(st.user_attrs.get("ablation_wall_time_s", math.nan))
                    say(f"[{i}/{len(plan)}] {study_name}: already complete ({done} trials), skipped")
                    continue
            if not started_ray:  # Ray up before the first run, so that its workers are kept
                started_ray = _init_ray(config)
            result = run_search(config, keep_workers=True)
            st = optuna.load_study(study_name=study_name, storage=storage)
            before = st.user_attrs.get("ablation_wall_time_s")  # a resumed study: add its earlier part
            total = result.wall_time_s + (before if isinstance(before, (int, float)) and math.isfinite(before) else 0.0)
            wall[(space, seed)] = total
            st.set_user_attr("ablation_wall_time_s", total)
            best = f"{result.best_accuracy:.4f}" if result.best_accuracy is not None else "-"
            say(f"[{i}/{len(plan)}] {study_name}: {result.completed} completed, {result.failed} failed, "
                f"front {len(result.front)}, best accuracy {best}, {result.wall_time_s:.0f} s")
    finally:
        release_workers()
        if started_ray:
            import ray

            ray.shutdown()
    res = summarise_ablation(storage, base.dataset, seeds, names, studies, list(base.objectives), wall)
    res.skipped = skipped
    if out is not None:
        res.report = write_ablation_report(storage, res, Path(out) / "ablation.html", base.storage)
        import json

        res.wall_time_s = time.perf_counter() - t0
        (Path(out) / "ablation.json").write_text(json.dumps(res.to_dict(), indent=2, allow_nan=False) + "\n",
                                                 encoding="utf-8")
    res.wall_time_s = time.perf_counter() - t0
    return res


def _feasible(study: Any) -> list[Any]:
    from hadanas.search._runner import feasible_complete

    return feasible_complete(study)


def summarise_ablation(storage: Any, dataset: str, seeds: Sequence[int], spaces: Sequence[str],
                       studies: dict[tuple[str, int], str], objectives: Sequence[str],
                       wall: dict[tuple[str, int], float] | None = None) -> AblationResult:
    """Hypervolumes (normalised, one reference point for every run) and family shares of the
    stored studies of an ablation."""
    import optuna

    from hadanas.config import OBJECTIVES
    from hadanas.dashboards._data import op_families, spec_ops
    from hadanas.search._pareto import hypervolume, pareto_mask, to_minimization
    from hadanas.spaces import FAMILIES

    loaded = {key: optuna.load_study(study_name=name, storage=storage) for key, name in studies.items()}
    values = {key: np.array([t.values for t in _feasible(st)], dtype=float).reshape(-1, len(objectives))
              for key, st in loaded.items()}
    every = np.vstack(list(values.values())) if values else np.empty((0, len(objectives)))
    scale: list[float | None] = []
    for j, o in enumerate(objectives):
        if o == "accuracy":
            scale.append(None)
        else:
            top = float(np.max(every[:, j])) if len(every) else 1.0
            scale.append(top if top > 0 else 1.0)
    directions = [OBJECTIVES[o] for o in objectives]
    ref = [REF_ACCURACY if o == "accuracy" else REF_COST for o in objectives]
    ref_nat = [0.0 if o == "accuracy" else REF_COST * float(scale[j] or 1.0) for j, o in enumerate(objectives)]

    def normalised(v: np.ndarray) -> np.ndarray:
        out = np.empty_like(v)
        for j, o in enumerate(objectives):
            out[:, j] = 1.0 - v[:, j] if o == "accuracy" else v[:, j] / float(scale[j] or 1.0)
        return out

    acc_col = list(objectives).index("accuracy")
    summaries = []
    for space in spaces:
        hv, acc, fs, done, wt = [], [], [], [], []
        for seed in seeds:
            v = values[(space, seed)]
            hv.append(hypervolume(normalised(v), ref) if len(v) else 0.0)
            acc.append(float(v[:, acc_col].max()) if len(v) else math.nan)
            # distinct points: a duplicate architecture on the front counts once
            fs.append(len(np.unique(v[pareto_mask(to_minimization(v, directions))], axis=0)) if len(v) else 0)
            done.append(len(v))
            wt.append(float((wall or {}).get((space, seed), math.nan)))
        summaries.append(SpaceSummary(space, hv, acc, fs, done, wt))

    share_space = next((s for s in spaces if s in ("full", "fusion")), spaces[0])
    fam = op_families()
    slots_front, slots_all, uses_front = Counter[str](), Counter[str](), Counter[str]()
    n_front = 0
    for seed in seeds:
        st = loaded[(share_space, seed)]
        trials = _feasible(st)
        if not trials:
            continue
        mask = pareto_mask(to_minimization(np.array([t.values for t in trials], dtype=float), directions))
        seen: set[str] = set()
        for t, on in zip(trials, mask):
            spec = t.user_attrs.get("spec")
            if not isinstance(spec, dict):
                continue
            fams = [fam.get(o, "unknown") for o in spec_ops(spec)]
            slots_all.update(fams)
            fp = t.user_attrs.get("fingerprint") or str(t.number)
            if on and fp not in seen:  # a duplicate of a front architecture counts once
                seen.add(fp)
                slots_front.update(fams)
                uses_front.update(set(fams))
                n_front += 1
    order = [f for f in (*FAMILIES, "unknown") if slots_all[f] or slots_front[f]]
    tot_f, tot_a = sum(slots_front.values()), sum(slots_all.values())
    return AblationResult(
        dataset=dataset, seeds=list(seeds), spaces=list(spaces), objectives=list(objectives),
        studies=dict(studies), skipped=[], summaries=summaries, scale=scale, reference=ref,
        reference_natural=ref_nat, share_space=share_space,
        family_share_front={f: slots_front[f] / tot_f if tot_f else 0.0 for f in order},
        family_share_all={f: slots_all[f] / tot_a if tot_a else 0.0 for f in order},
        family_trials_front={f: uses_front[f] / n_front if n_front else 0.0 for f in order},
        n_front=n_front,
    )


def write_ablation_report(storage: Any, res: AblationResult, path: Path, storage_url: str) -> Path:
    """The dashboard of the first seed's complete-space study with every other study's front
    overlaid (ablation view), against the ablation's reference point in natural units."""
    from hadanas.dashboards._records import StoreReader
    from hadanas.dashboards._report import write_report

    order = [res.studies[(sp, seed)] for seed in res.seeds for sp in res.spaces]
    main_name = res.studies[(res.share_space, res.seeds[0])]
    others = [n for n in order if n != main_name]
    reader = StoreReader(storage, main_name)
    compare = [StoreReader(storage, n).read() for n in others]
    return write_report(reader.read(specs=True), path, compare, res.reference_natural, storage_url,
                        reader.full_trial)


def _fmt_ms(m: float, s: float, digits: int = 4) -> str:
    if math.isnan(m):
        return "-"
    if math.isnan(s):  # one seed
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def format_ablation(res: AblationResult) -> str:
    """The printed report: the hypervolume table, the reference point, the family shares."""
    from hadanas.search._objectives import format_value

    lines = []
    costs = [(o, s) for o, s in zip(res.objectives, res.scale) if s is not None]
    norm = ", ".join(["1 - accuracy"] + [f"{o} / {format_value(o, s)}" for o, s in costs])
    lines.append(f"Ablation on '{res.dataset}': {len(res.spaces)} spaces x {len(res.seeds)} seed(s) "
                 f"(seeds {','.join(map(str, res.seeds))})")
    lines.append(f"hypervolume of ({norm}) against the reference point "
                 f"({', '.join(f'{r:g}' for r in res.reference)}) "
                 f"= accuracy 0, " + ", ".join(f"{o} {format_value(o, REF_COST * s)}" for o, s in costs)
                 + f"; larger is better (at most {REF_ACCURACY * REF_COST ** len(costs):.2f})")
    full = next((s for s in res.summaries if s.space == res.share_space), None)
    header = ["space", "hypervolume (mean ± std)", "vs " + res.share_space, "best accuracy",
              "front size", "trials", "per seed"]
    rows = []
    for s in res.summaries:
        m, sd = s.hv_mean_std
        am, asd = s.acc_mean_std
        delta = "-" if full is None or s is full else f"{m - full.hv_mean_std[0]:+.4f}"
        rows.append([s.space, _fmt_ms(m, sd), delta, _fmt_ms(am, asd, 3),
                     f"{np.mean(s.front_size):.1f}", f"{sum(s.completed)}",
                     " ".join(f"{h:.4f}" for h in s.hypervolume)])
    lines.append(_table(header, rows))
    lines.append("")
    lines.append(f"operator families on the '{res.share_space}' front(s): {res.n_front} distinct "
                 f"architecture(s) over {len(res.seeds)} seed(s); share of op slots (sums to 1) "
                 "beside the share over all its trials")
    fam_rows = [[f, f"{res.family_share_front[f]:.3f}", f"{res.family_share_all[f]:.3f}",
                 f"{res.family_trials_front[f]:.2f}"] for f in res.family_share_front]
    lines.append(_table(["family", "front share", "all-trials share", "front archs using it"], fam_rows))
    if res.skipped:
        lines.append(f"\n{len(res.skipped)} stud{'y' if len(res.skipped) == 1 else 'ies'} already "
                     "complete, not rerun.")
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
