"""The LightningModule that trains any ArchSpec, and the callbacks of a trial.

Metrics leave the module only through ``self.log``; what the search needs (per-epoch
validation accuracy, early stopping, latency, progress) is done by callbacks.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from hadanas._logging import get_logger
from hadanas.exceptions import TrialFailed
from hadanas.spaces import ArchSpec, build_model, measure_latency

__all__ = [
    "BNRecalibration",
    "FidelityCallback",
    "LatencyCallback",
    "ProgressLog",
    "SpecModule",
    "recalibrate_bn",
]

log = get_logger(__name__)

#: Key under which FidelityCallback mirrors its history into ``trainer.callback_metrics``
#: (so it survives a ``ddp_spawn`` fit, whose callbacks run in child processes).
HISTORY_KEY = "fidelity_history"


def _plain(obj: Any) -> Any:
    """``obj`` as JSON types only (dict/list/str/number/bool/None), so a checkpoint's
    hyper-parameters load with ``torch.load(weights_only=True)``."""
    return json.loads(json.dumps(obj))


class SpecModule(pl.LightningModule):
    """Trains ``build_model(spec)`` on one- or two-input batches ``(*inputs, labels)``.

    The spec (as a JSON dict), input shapes and optimiser settings are the module's
    hyper-parameters, so ``SpecModule.load_from_checkpoint(path, weights_only=True)``
    rebuilds the same model from the checkpoint alone.
    """

    def __init__(
        self,
        spec: dict[str, Any],
        input_shapes: Sequence[Sequence[int]],
        num_classes: int,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        epochs: int = 5,
    ) -> None:
        super().__init__()
        hp = {
            "spec": _plain(spec),
            "input_shapes": [[int(d) for d in s] for s in input_shapes],
            "num_classes": int(num_classes),
            "lr": float(lr),
            "weight_decay": float(weight_decay),
            "epochs": int(epochs),
        }
        self.save_hyperparameters(hp)
        self.model = build_model(ArchSpec.from_dict(hp["spec"]), hp["input_shapes"], hp["num_classes"])
        self._counts = torch.zeros(3, dtype=torch.int64)
        self._val_loss = torch.zeros((), dtype=torch.float64)
        self._train_loss = torch.zeros((), dtype=torch.float64)
        self._train_seen = 0
        self.last_val_acc = math.nan

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.model(*xs)  # (N, num_classes)

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        *xs, y = batch
        loss = F.cross_entropy(self(*xs).float(), y)
        if not torch.isfinite(loss):
            raise TrialFailed(
                f"non-finite training loss ({loss.item()}) at epoch {self.current_epoch + 1}, "
                f"step {self.global_step}; lower the learning rate or check the inputs for NaN/inf"
            )
        self._train_loss += loss.detach() * len(y)  # summed on the device; logged once per epoch
        self._train_seen += len(y)
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self._train_seen = 0

    def on_train_epoch_end(self) -> None:
        total = self.trainer.strategy.reduce(
            torch.stack([self._train_loss, torch.tensor(float(self._train_seen), dtype=torch.float64,
                                                        device=self.device)]), reduce_op="sum")
        self.log("train_loss", float(total[0] / total[1].clamp(min=1)))

    def on_validation_epoch_start(self) -> None:
        # [correct, seen, non-finite logits] and the loss sum accumulate on the device: no
        # sync and no logging machinery per batch.
        self._counts = torch.zeros(3, dtype=torch.int64, device=self.device)
        self._val_loss = torch.zeros((), dtype=torch.float64, device=self.device)

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        *xs, y = batch
        logits = self(*xs).float()  # (N, num_classes)
        self._counts += torch.stack([
            (logits.argmax(1) == y).sum(),
            torch.tensor(len(y), device=y.device),
            (~torch.isfinite(logits)).any(1).sum(),
        ])
        self._val_loss += F.cross_entropy(logits, y, reduction="sum").double()

    def on_validation_epoch_end(self) -> None:
        # Exact accuracy over the whole validation set, summed over DDP ranks.
        counts = self.trainer.strategy.reduce(self._counts.clone(), reduce_op="sum")
        if int(counts[2]) and not self.trainer.sanity_checking:
            raise TrialFailed(
                f"non-finite outputs on {int(counts[2])} validation samples after epoch "
                f"{self.current_epoch + 1}; the weights diverged: lower the learning rate"
            )
        loss = self.trainer.strategy.reduce(self._val_loss.clone(), reduce_op="sum")
        self.last_val_acc = int(counts[0]) / max(int(counts[1]), 1)  # exact, for FidelityCallback
        self.log("val_acc", self.last_val_acc)
        self.log("val_loss", float(loss) / max(int(counts[1]), 1))

    def test_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        *xs, y = batch
        acc = (self(*xs).argmax(1) == y).float().mean()
        self.log("test_acc", acc, batch_size=len(y), sync_dist=True)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.hparams.epochs))
        return {"optimizer": opt, "lr_scheduler": sched}


class FidelityCallback(pl.Callback):
    """Records the validation accuracy of every epoch and reports it to the search.

    ``report(epoch, val_acc) -> bool`` runs on global rank 0; returning False stops the fit
    (multi-fidelity early stopping) on every rank.
    """

    def __init__(self, report: Callable[[int, float], bool] | None = None) -> None:
        self.report = report
        self.history: list[float] = []
        self.stopped_early = False

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.history = []
        self.stopped_early = False

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        # The module's exact value when it keeps one, else what it logged as 'val_acc'.
        value = getattr(pl_module, "last_val_acc", None)
        if value is None:
            value = trainer.callback_metrics.get("val_acc")
        acc = float(value) if value is not None else math.nan
        if math.isnan(acc):
            raise TrialFailed("validation accuracy is NaN (was 'val_acc' logged?)")
        self.history.append(acc)
        trainer.callback_metrics[HISTORY_KEY] = torch.tensor(self.history, dtype=torch.float64)
        epoch = len(self.history)
        go_on = True
        if self.report is not None and trainer.is_global_zero:
            go_on = bool(self.report(epoch, acc))
        go_on = bool(trainer.strategy.broadcast(go_on, src=0))
        if not go_on:
            if epoch < (trainer.max_epochs or 0):
                self.stopped_early = True
            trainer.should_stop = True


class ProgressLog(pl.Callback):
    """One log line per epoch (``hadanas.trainers`` logger, DEBUG by default) on rank 0."""

    def __init__(self, level: int = 10, label: str = "") -> None:
        self.level = level
        self.label = label
        self._t0 = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not log.isEnabledFor(self.level):
            return
        m = trainer.callback_metrics
        log.log(self.level, "%sepoch %d/%s train_loss %.4f val_acc %.4f (%.2f s)", self.label,
                trainer.current_epoch + 1, trainer.max_epochs, float(m.get("train_loss", math.nan)),
                float(m.get("val_acc", math.nan)), time.perf_counter() - self._t0)


class LatencyCallback(pl.Callback):
    """Measures the trained model's forward latency (median ms, ``batch`` samples) on the
    trial's device at the end of the fit; the result is in ``latency_ms`` (rank 0)."""

    def __init__(self, input_shapes: Sequence[Sequence[int]], batch: int = 1) -> None:
        self.input_shapes = [tuple(s) for s in input_shapes]
        self.batch = batch
        self.latency_ms: float | None = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.latency_ms = measure_latency(pl_module.model, self.input_shapes, batch=self.batch)
            trainer.callback_metrics["latency_ms"] = torch.tensor(self.latency_ms)


class BNRecalibration(pl.Callback):
    """Re-estimates BatchNorm running statistics before each validation.

    Short NAS trainings move weights faster than BN's running averages follow, and a
    lag in one layer compounds through the cell DAG (products amplify it): eval-mode
    accuracy then collapses to chance while train-mode accuracy is high. Before every
    validation, this callback resets the statistics and re-estimates them as exact
    averages over ``batches`` training batches, with no gradient (as in single-path
    one-shot NAS). The exported weights carry these calibrated statistics.
    """

    def __init__(self, batches: int = 8) -> None:
        self.batches = batches

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        loader = trainer.train_dataloader
        if loader is None:
            return
        recalibrate_bn(pl_module, loader, self.batches)


@torch.no_grad()
def recalibrate_bn(module: torch.nn.Module, loader: Any, batches: int = 8) -> None:
    """Reset and re-estimate every BatchNorm's running stats from ``batches`` of ``loader``."""
    bns = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    was_training = module.training
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    module.train()
    device = next(module.parameters()).device
    for i, (*xs, _y) in enumerate(loader):
        if i >= batches:
            break
        module(*(x.to(device) for x in xs))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    module.train(was_training)
