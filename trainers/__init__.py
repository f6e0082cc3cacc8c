"""Datasets, the LightningModule, and the per-trial fit."""

from __future__ import annotations

from hadanas.trainers._data import DataBundle, list_datasets, load_dataset, register_dataset
from hadanas.trainers._fit import FitResult, TrainConfig, evaluate, fit_spec, quiet_lightning
from hadanas.trainers._module import FidelityCallback, SpecModule

__all__ = [
    "DataBundle",
    "FidelityCallback",
    "FitResult",
    "SpecModule",
    "TrainConfig",
    "evaluate",
    "fit_spec",
    "list_datasets",
    "load_dataset",
    "quiet_lightning",
    "register_dataset",
]
