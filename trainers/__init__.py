"""Datasets, the LightningModule, its callbacks, and the per-trial fit."""

from __future__ import annotations

from hadanas.trainers import _builtin  # noqa: F401  (registers the built-in datasets)
from hadanas.trainers._data import (
    DataBundle,
    clear_cache,
    dataset_descriptions,
    is_dataset,
    list_datasets,
    load_dataset,
    make_bundle,
    register_dataset,
    stratified_split,
    stratified_subset,
)
from hadanas.trainers._fit import (
    PRECISIONS,
    FitResult,
    TrainConfig,
    build_trainer,
    evaluate,
    fit_spec,
    make_loader,
    quiet_lightning,
    resolve_precision,
)
from hadanas.trainers._idx import read_idx
from hadanas.trainers._module import (
    BNRecalibration,
    FidelityCallback,
    LatencyCallback,
    ProgressLog,
    SpecModule,
    recalibrate_bn,
)

__all__ = [
    "PRECISIONS",
    "BNRecalibration",
    "DataBundle",
    "FidelityCallback",
    "FitResult",
    "LatencyCallback",
    "ProgressLog",
    "SpecModule",
    "TrainConfig",
    "build_trainer",
    "clear_cache",
    "dataset_descriptions",
    "evaluate",
    "is_dataset",
    "fit_spec",
    "list_datasets",
    "load_dataset",
    "make_bundle",
    "make_loader",
    "quiet_lightning",
    "read_idx",
    "recalibrate_bn",
    "register_dataset",
    "resolve_precision",
    "stratified_split",
    "stratified_subset",
]
