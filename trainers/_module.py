"""The LightningModule that trains any ArchSpec, and the per-epoch fidelity callback."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from hadanas.exceptions import TrialFailed
from hadanas.spaces import ArchSpec, build_model

__all__ = ["SpecModule", "FidelityCallback", "BNRecalibration", "recalibrate_bn"]


class SpecModule(pl.LightningModule):
    """Trains ``build_model(spec)``; the spec is a hyper-parameter, so a checkpoint rebuilds itself."""

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
        self.save_hyperparameters()
        self.model = build_model(ArchSpec.from_dict(spec), input_shapes, num_classes)
        self._correct = 0
        self._seen = 0

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.model(*xs)

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        *xs, y = batch
        loss = F.cross_entropy(self(*xs).float(), y)
        if not torch.isfinite(loss):
            raise TrialFailed(f"non-finite training loss ({loss.item()}) at step {self.global_step}")
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._correct = 0
        self._seen = 0

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        *xs, y = batch
        logits = self(*xs).float()
        self._correct += int((logits.argmax(1) == y).sum())
        self._seen += len(y)
        self.log("val_loss", F.cross_entropy(logits, y), batch_size=len(y))

    def val_accuracy(self) -> float:
        """Accuracy over the validation epoch so far."""
        return self._correct / max(self._seen, 1)

    def on_validation_epoch_end(self) -> None:
        self.log("val_acc", self.val_accuracy())

    def test_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        *xs, y = batch
        acc = (self(*xs).argmax(1) == y).float().mean()
        self.log("test_acc", acc, batch_size=len(y))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.hparams.epochs))
        return {"optimizer": opt, "lr_scheduler": sched}


class FidelityCallback(pl.Callback):
    """Reports validation accuracy after every epoch; stops the fit when ``report`` says so.

    ``report(epoch, val_acc) -> bool``: return False to stop early (multi-fidelity).
    """

    def __init__(self, report: Callable[[int, float], bool] | None = None) -> None:
        self.report = report
        self.history: list[float] = []
        self.stopped_early = False

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        acc = float(pl_module.val_accuracy())  # type: ignore[operator]
        if math.isnan(acc):
            raise TrialFailed("validation accuracy is NaN")
        self.history.append(acc)
        epoch = len(self.history)
        if self.report is not None and not self.report(epoch, acc):
            if epoch < trainer.max_epochs:  # type: ignore[operator]
                self.stopped_early = True
            trainer.should_stop = True


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
