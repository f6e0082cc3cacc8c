"""Datasets: the bundle type, seeded stratified splits, the registry and the name resolver.

``load_dataset(name, seed, subset)`` resolves ``name`` to a loader, calls it once per process
and caches the result (a Ray actor that trains many trials loads its data once):

- a registered name: ``digits`` (default), ``fashion-mnist``, ``mfeat``, ``mfeat-pix``;
- ``folder:PATH`` or an existing directory: one sub-folder of images per class;
- ``npz:PATH`` or an existing ``.npz`` file: ``image`` (and optionally ``vector``) plus ``y``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hadanas._logging import get_logger
from hadanas.exceptions import ConfigError, DatasetError, close_matches

__all__ = [
    "DataBundle",
    "clear_cache",
    "Loader",
    "dataset_descriptions",
    "is_dataset",
    "list_datasets",
    "load_dataset",
    "make_bundle",
    "register_dataset",
    "stratified_split",
    "stratified_subset",
]

log = get_logger(__name__)

#: ``loader(seed, subset) -> DataBundle``
Loader = Callable[[int, "int | None"], "DataBundle"]

MIN_SUBSET = 30


@dataclass(frozen=True)
class DataBundle:
    """Train/validation/test tensors of one dataset.

    ``inputs[split]`` is a tuple of tensors (one per modality, images ``(N, C, H, W)``,
    vectors ``(N, D)``), already normalised with statistics of the train split only;
    ``labels[split]`` is ``(N,)`` int64 in ``0 .. num_classes - 1``.
    """

    name: str
    inputs: dict[str, tuple[torch.Tensor, ...]]
    labels: dict[str, torch.Tensor]
    num_classes: int
    modalities: tuple[str, ...] = ("image",)
    classes: tuple[str, ...] = field(default=())

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(t.shape[1:]) for t in self.inputs["train"]]

    def sizes(self) -> dict[str, int]:
        return {k: int(v.shape[0]) for k, v in self.labels.items()}


# --- splits ------------------------------------------------------------------------------


def _allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` over classes in proportion to ``counts`` (largest remainder, >= 1 each)."""
    exact = counts * (n / counts.sum())
    take = np.maximum(np.floor(exact).astype(np.int64), 1)
    take = np.minimum(take, counts)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    i = 0
    while take.sum() < n and i < 10 * len(counts):
        c = order[i % len(counts)]
        if take[c] < counts[c]:
            take[c] += 1
        i += 1
    while take.sum() > n:  # only when the >= 1 floor overshoots
        c = int(np.argmax(take))
        take[c] -= 1
    return take


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded, class-stratified sample of ``n`` of ``len(y)`` items."""
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    take = _allocate(counts, n)
    keep = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(keep))


def stratified_split(
    y: np.ndarray, seed: int, fractions: Sequence[float] = (0.6, 0.2, 0.2)
) -> dict[str, np.ndarray]:
    """Indices of a seeded stratified split into ``train``/``val``(/``test``).

    Two fractions give ``train`` and ``val``; three give ``train``, ``val`` and ``test``.
    """
    names = ("train", "val", "test")[: len(fractions)]
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        start = 0
        for k, (name, f) in enumerate(zip(names, fractions)):
            stop = len(idx) if k == len(names) - 1 else start + int(round(f * len(idx)))
            parts[name].append(idx[start:stop])
            start = stop
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def _check_split_sizes(name: str, y: np.ndarray, fractions: Sequence[float]) -> None:
    _, counts = np.unique(y, return_counts=True)
    need = int(np.ceil(1 / min(fractions)))
    if counts.min() < need:
        raise DatasetError(
            f"dataset '{name}': every class needs at least {need} samples for the train/val/test "
            f"split, but the smallest class has {int(counts.min())}; add samples or merge classes."
        )


# --- normalisation (train-split statistics only) -----------------------------------------


def _standardise(splits: dict[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """``(x - mean) / std`` with mean and std of the train split: per channel for images
    (N, C, H, W), per feature for vectors (N, D). Constant features get std 1."""
    tr = splits["train"].astype(np.float64)
    axes = (0, 2, 3) if kind == "image" else (0,)
    mean = tr.mean(axis=axes, keepdims=True)
    std = tr.std(axis=axes, keepdims=True)
    std = np.where(std > 1e-8, std, 1.0)
    return {k: ((v - mean) / std).astype(np.float32) for k, v in splits.items()}


def make_bundle(
    name: str,
    xs: Sequence[np.ndarray],
    y: np.ndarray,
    seed: int,
    modalities: Sequence[str],
    *,
    test: tuple[Sequence[np.ndarray], np.ndarray] | None = None,
    fractions: Sequence[float] | None = None,
    standardise: Sequence[bool] | None = None,
    classes: Sequence[str] = (),
) -> DataBundle:
    """Split ``xs``/``y`` (stratified, seeded) and build a :class:`DataBundle`.

    With ``test=(test_xs, test_y)`` the pool is split into train/val only (``fractions``
    default ``(5/6, 1/6)``), otherwise into train/val/test (default ``(0.6, 0.2, 0.2)``).
    ``standardise[m]`` standardises modality ``m`` with train-split statistics; inputs
    not standardised must already be normalised by fixed per-dataset constants.
    """
    y = np.asarray(y)
    if fractions is None:
        fractions = (5 / 6, 1 / 6) if test is not None else (0.6, 0.2, 0.2)
    _check_split_sizes(name, y, fractions)
    split = stratified_split(y, seed, fractions)
    per_split: dict[str, list[np.ndarray]] = {k: [x[i] for x in xs] for k, i in split.items()}
    ys = {k: y[i] for k, i in split.items()}
    if test is not None:
        per_split["test"] = list(test[0])
        ys["test"] = np.asarray(test[1])
    std = list(standardise) if standardise is not None else [False] * len(xs)
    for m, (kind, do) in enumerate(zip(modalities, std)):
        if do:
            out = _standardise({k: v[m] for k, v in per_split.items()}, kind)
            for k in per_split:
                per_split[k][m] = out[k]
    inputs = {
        k: tuple(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in v)
        for k, v in per_split.items()
    }
    labels = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in ys.items()}
    num_classes = int(max(int(v.max()) for v in ys.values())) + 1
    return DataBundle(name, inputs, labels, num_classes, tuple(modalities), tuple(classes))


# --- registry and resolver ---------------------------------------------------------------

_DATASETS: dict[str, Loader] = {}
_DESCRIPTIONS: dict[str, str] = {}
_CACHE: dict[tuple[object, ...], DataBundle] = {}


def register_dataset(name: str, loader: Loader, description: str = "") -> None:
    """Make ``loader(seed, subset) -> DataBundle`` available as ``--dataset name``."""
    if name in _DATASETS:
        raise ValueError(f"a dataset named '{name}' is already registered.")
    if ":" in name or os.sep in name:
        raise ValueError(f"dataset name '{name}' must not contain ':' or '{os.sep}'.")
    _DATASETS[name] = loader
    lines = (loader.__doc__ or "").strip().splitlines()
    _DESCRIPTIONS[name] = description or (lines[0] if lines else "")


def list_datasets() -> list[str]:
    """Registered dataset names (paths and ``folder:``/``npz:`` names are accepted too)."""
    return list(_DATASETS)


def dataset_descriptions() -> dict[str, str]:
    """``{name: one-line description}`` of every registered dataset."""
    return dict(_DESCRIPTIONS)


def is_dataset(name: str) -> bool:
    """Whether ``load_dataset`` would try ``name``: a registered name, ``folder:``/``npz:``
    with a path, or an existing folder or ``.npz`` file. Cheap: reads no data."""
    if not isinstance(name, str) or not name:
        return False
    if name in _DATASETS:
        return True
    kind, _, rest = name.partition(":")
    if kind in ("folder", "npz") and rest:
        return True
    base = Path(name.split("?", 1)[0]).expanduser()
    return base.is_dir() or (base.suffix == ".npz" and base.is_file())


def _resolve(name: str) -> tuple[tuple[object, ...], Loader]:
    """The cache key and loader for ``name`` (registered name, ``folder:``/``npz:`` or path)."""
    from hadanas.trainers._user import folder_loader, npz_loader

    if name in _DATASETS:
        return (name,), _DATASETS[name]
    kind, _, rest = name.partition(":")
    if kind in ("folder", "npz") and rest:
        path_str = rest
    elif Path(name.split("?", 1)[0]).expanduser().exists():
        path_str = name
        base = Path(name.split("?", 1)[0]).expanduser()
        kind = "folder" if base.is_dir() else "npz" if base.suffix == ".npz" else ""
        if not kind:
            raise ConfigError(
                f"dataset path '{name}' is neither a folder of class sub-folders nor a .npz file."
            )
    else:
        raise ConfigError(
            f"unknown dataset '{name}'." + close_matches(name, _DATASETS)
            + f" Valid datasets: {', '.join(_DATASETS)}, or folder:PATH (one sub-folder of "
            "images per class) or npz:PATH (arrays image[, vector], y)."
        )
    path_part, _, options = path_str.partition("?")
    path = Path(path_part).expanduser().resolve()
    if not path.exists():
        raise DatasetError(f"dataset {kind}:{path_part}: no such {'folder' if kind == 'folder' else 'file'}.")
    stamp = path.stat().st_mtime_ns
    if kind == "folder":
        return ("folder", str(path), options, stamp), folder_loader(path, options)
    return ("npz", str(path), options, stamp), npz_loader(path, options)


def load_dataset(name: str = "digits", seed: int = 0, subset: int | None = None) -> DataBundle:
    """Load (once per process, then cached) the dataset ``name`` split with ``seed``.

    ``subset=N`` keeps a class-stratified sample of N training-pool samples (train + val;
    a dataset with its own test set keeps that test set whole) for fast CPU searches.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"dataset must be a non-empty name or path, but got {name!r}.")
    if subset is not None and (not isinstance(subset, int) or subset < MIN_SUBSET):
        raise ConfigError(f"subset must be an integer of at least {MIN_SUBSET} samples, but got {subset!r}.")
    key_head, loader = _resolve(name)
    key = (*key_head, seed, subset)
    if key not in _CACHE:
        t0 = time.perf_counter()
        _CACHE[key] = loader(seed, subset)
        b = _CACHE[key]
        log.debug("loaded dataset '%s' %s in %.2f s", b.name, b.sizes(), time.perf_counter() - t0)
    return _CACHE[key]


def clear_cache() -> None:
    """Forget every cached dataset (tests; a long-lived process that changed files)."""
    _CACHE.clear()
