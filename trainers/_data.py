"""Datasets: real data that ships inside installed packages, loaded once per process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from hadanas.exceptions import ConfigError, DatasetError, close_matches

__all__ = ["DataBundle", "load_dataset", "list_datasets", "register_dataset"]


@dataclass(frozen=True)
class DataBundle:
    """Train/validation/test tensors of one dataset.

    ``inputs[split]`` is a tuple of tensors (one per modality, images ``(N, C, H, W)``,
    vectors ``(N, D)``); ``labels[split]`` is ``(N,)`` int64.
    """

    name: str
    inputs: dict[str, tuple[torch.Tensor, ...]]
    labels: dict[str, torch.Tensor]
    num_classes: int
    modalities: tuple[str, ...] = ("image",)

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(t.shape[1:]) for t in self.inputs["train"]]

    def sizes(self) -> dict[str, int]:
        return {k: int(v.shape[0]) for k, v in self.labels.items()}


def stratified_split(
    y: np.ndarray, seed: int, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
) -> dict[str, np.ndarray]:
    """Indices of a seeded stratified train/val/test split."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_tr = int(round(fractions[0] * len(idx)))
        n_va = int(round(fractions[1] * len(idx)))
        parts["train"].append(idx[:n_tr])
        parts["val"].append(idx[n_tr : n_tr + n_va])
        parts["test"].append(idx[n_tr + n_va :])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def _bundle(name: str, xs: list[np.ndarray], y: np.ndarray, seed: int,
            modalities: tuple[str, ...]) -> DataBundle:
    split = stratified_split(y, seed)
    inputs = {k: tuple(torch.as_tensor(x[i], dtype=torch.float32) for x in xs) for k, i in split.items()}
    labels = {k: torch.as_tensor(y[i], dtype=torch.int64) for k, i in split.items()}
    return DataBundle(name, inputs, labels, int(y.max()) + 1, modalities)


def _digits(seed: int, subset: int | None) -> DataBundle:
    """scikit-learn's ``load_digits``: 1,797 real 8x8 handwritten digits (values 0..16)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - a declared dependency
        raise DatasetError("dataset 'digits' needs scikit-learn: pip install scikit-learn") from None
    d = load_digits()
    x = (d.data.astype(np.float32) / 16.0 - 0.5) / 0.5
    x = x.reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    if subset:
        keep = np.sort(np.random.default_rng(seed).permutation(len(y))[:subset])
        x, y = x[keep], y[keep]
    return _bundle("digits", [x], y, seed, ("image",))


_DATASETS: dict[str, Callable[[int, int | None], DataBundle]] = {"digits": _digits}
_CACHE: dict[tuple[str, int, int | None], DataBundle] = {}


def register_dataset(name: str, loader: Callable[[int, int | None], DataBundle]) -> None:
    """Make ``loader(seed, subset) -> DataBundle`` available as ``--dataset name``."""
    if name in _DATASETS:
        raise ValueError(f"a dataset named '{name}' is already registered.")
    _DATASETS[name] = loader


def list_datasets() -> list[str]:
    return list(_DATASETS)


def load_dataset(name: str, seed: int = 0, subset: int | None = None) -> DataBundle:
    """Load (once per process, then cached) the dataset ``name`` split with ``seed``."""
    if name not in _DATASETS:
        raise ConfigError(
            f"unknown dataset '{name}'." + close_matches(name, _DATASETS)
            + f" Valid datasets: {', '.join(_DATASETS)}."
        )
    if subset is not None and subset < 30:
        raise ConfigError(f"subset must be at least 30 samples, but got {subset}.")
    key = (name, seed, subset)
    if key not in _CACHE:
        _CACHE[key] = _DATASETS[name](seed, subset)
    return _CACHE[key]
