"""Train one spec with a Lightning Trainer and return what the search records."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from hadanas.spaces import ArchSpec
from hadanas.trainers._data import DataBundle
from hadanas.trainers._module import BNRecalibration, FidelityCallback, SpecModule

__all__ = ["TrainConfig", "FitResult", "fit_spec", "quiet_lightning"]


@dataclass(frozen=True)
class TrainConfig:
    """How each trial trains. ``precision='bf16-mixed'`` is the usual choice on GPUs."""

    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-2
    weight_decay: float = 1e-4
    accelerator: str = "auto"
    devices: int | str = 1
    precision: str = "32-true"
    strategy: str = "auto"


@dataclass
class FitResult:
    val_accuracy: float
    history: list[float]
    epochs: int
    stopped_early: bool
    wall_s: float
    device: str
    state_dict: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)


def quiet_lightning() -> None:
    """Silence Lightning's per-fit banners (used inside trial workers)."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")


def _loader(data: DataBundle, split: str, batch: int, shuffle: bool, seed: int) -> DataLoader:
    ds = TensorDataset(*data.inputs[split], data.labels[split])
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(ds, batch_size=batch, shuffle=shuffle, generator=gen, num_workers=0)


def fit_spec(
    spec: ArchSpec,
    data: DataBundle,
    config: TrainConfig,
    seed: int,
    report: Callable[[int, float], bool] | None = None,
    splits: tuple[str, ...] = ("train",),
) -> FitResult:
    """Train ``spec`` on ``data`` (train split, or several merged) and validate every epoch.

    Raises :class:`hadanas.exceptions.TrialFailed` on non-finite loss.
    """
    t0 = time.perf_counter()
    pl.seed_everything(seed, workers=False, verbose=False)
    module = SpecModule(
        spec.to_dict(), data.input_shapes, data.num_classes,
        lr=config.lr, weight_decay=config.weight_decay, epochs=config.epochs,
    )
    fidelity = FidelityCallback(report)
    trainer = pl.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        precision=config.precision,  # type: ignore[arg-type]
        strategy=config.strategy,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[BNRecalibration(), fidelity],
        deterministic=False,
    )
    if len(splits) == 1:
        train = _loader(data, splits[0], config.batch_size, True, seed)
    else:
        merged = [torch.cat([data.inputs[s][m] for s in splits]) for m in range(len(data.modalities))]
        labels = torch.cat([data.labels[s] for s in splits])
        train = DataLoader(TensorDataset(*merged, labels), batch_size=config.batch_size,
                           shuffle=True, generator=torch.Generator().manual_seed(seed))
    val = _loader(data, "val", 512, False, seed)
    trainer.fit(module, train, val)
    if trainer.interrupted:
        raise KeyboardInterrupt
    state = {k: v.detach().cpu().contiguous() for k, v in module.model.state_dict().items()}
    device = str(next(module.model.parameters()).device) if trainer.strategy else "cpu"
    return FitResult(
        val_accuracy=fidelity.history[-1] if fidelity.history else 0.0,
        history=fidelity.history,
        epochs=len(fidelity.history),
        stopped_early=fidelity.stopped_early,
        wall_s=time.perf_counter() - t0,
        device=device,
        state_dict=state,
    )


def evaluate(model: torch.nn.Module, data: DataBundle, split: str = "test") -> float:
    """Accuracy of ``model`` on a split (inference mode, CPU or the model's device)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    with torch.no_grad():
        for *xs, y in _loader(data, split, 512, False, 0):
            logits = model(*(x.to(device) for x in xs))
            correct += int((logits.argmax(1).cpu() == y).sum())
    return correct / len(data.labels[split])


