"""Train one spec with a Lightning Trainer and return what the search records."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from hadanas.exceptions import ConfigError
from hadanas.spaces import ArchSpec
from hadanas.trainers._data import DataBundle
from hadanas.trainers._module import (
    HISTORY_KEY,
    BNRecalibration,
    FidelityCallback,
    LatencyCallback,
    ProgressLog,
    SpecModule,
)

__all__ = [
    "FitResult",
    "PRECISIONS",
    "TensorBatches",
    "TrainConfig",
    "build_trainer",
    "evaluate",
    "fit_spec",
    "make_loader",
    "quiet_lightning",
    "resolve_precision",
]

#: Lightning precisions a trial may use; ``auto`` is bf16-mixed on a bf16-capable GPU, else 32-true.
PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "64-true", "bf16-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


@dataclass(frozen=True)
class TrainConfig:
    """How each trial trains.

    ``accelerator``/``devices``/``precision``/``strategy`` go to the Lightning Trainer as
    they are, except: ``precision="auto"`` is ``bf16-mixed`` on a GPU that supports it and
    ``32-true`` elsewhere; ``strategy="auto"`` with more than one device is ``ddp_spawn``
    (it works inside a Ray actor, where the script-relaunching ``ddp`` cannot; the
    ``report`` callable must then be picklable). ``early_stop_patience`` stops a trial
    whose validation accuracy has not improved for that many epochs; ``latency_batch``
    measures the trained model's latency on the trial's device.
    """

    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-2
    weight_decay: float = 1e-4
    accelerator: str = "auto"
    devices: int | str = 1
    precision: str = "32-true"
    strategy: str = "auto"
    early_stop_patience: int | None = None
    latency_batch: int | None = None
    bn_batches: int = 8
    deterministic: bool = False

    def __post_init__(self) -> None:
        def whole(name: str, lo: int, allow_none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"train '{name}' must be an integer >= {lo}, but got {v!r}.")

        whole("epochs", 1)
        whole("batch_size", 1)
        whole("bn_batches", 0)
        whole("early_stop_patience", 1, allow_none=True)
        whole("latency_batch", 1, allow_none=True)
        for name in ("lr", "weight_decay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0 \
                    or (name == "lr" and v == 0):
                raise ConfigError(f"train '{name}' must be a finite number {'> 0' if name == 'lr' else '>= 0'}, "
                                  f"but got {v!r}.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train 'precision' must be one of {', '.join(PRECISIONS)}, "
                              f"but got {self.precision!r}.")
        if self.accelerator not in ACCELERATORS:
            raise ConfigError(f"train 'accelerator' must be one of {', '.join(ACCELERATORS)}, "
                              f"but got {self.accelerator!r}.")
        d = self.devices
        if not (d == "auto" or d == -1 or (isinstance(d, int) and not isinstance(d, bool) and d >= 1)):
            raise ConfigError(f"train 'devices' must be a count >= 1, -1 (all) or 'auto', but got {d!r}.")
        if not isinstance(self.strategy, str) or not self.strategy:
            raise ConfigError(f"train 'strategy' must be a Lightning strategy name, but got {self.strategy!r}.")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown train setting(s) {unknown}; valid: {', '.join(sorted(known))}.")
        return cls(**data)


@dataclass
class FitResult:
    val_accuracy: float
    history: list[float]
    epochs: int
    stopped_early: bool
    wall_s: float
    device: str
    precision: str = "32-true"
    latency_ms: float | None = None
    fit_s: float = 0.0
    state_dict: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)


def quiet_lightning() -> None:
    """Silence Lightning's per-fit banners (used inside trial workers)."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", ".*when logging on epoch level in distributed.*")  # pre-reduced


# --- data loading: whole batches by tensor indexing, no per-sample collate ---------------


class TensorBatches(Dataset):  # type: ignore[type-arg]
    """Like ``TensorDataset``, but a DataLoader fetches a whole batch with one fancy index
    per tensor (``__getitems__``) instead of collating ``batch_size`` single samples."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorBatches needs tensors of one length.")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[i] for t in self.tensors)

    def __getitems__(self, idx: Sequence[int]) -> tuple[torch.Tensor, ...]:
        ix = torch.as_tensor(idx, dtype=torch.int64)
        return tuple(t[ix] for t in self.tensors)


def _as_batch(batch: Any) -> Any:
    """collate_fn: batches from ``__getitems__`` are ready; single samples are stacked."""
    if isinstance(batch, tuple):
        return list(batch)
    return torch.utils.data.default_collate(batch)


class SeededShuffle(Sampler[int]):
    """A new seeded permutation on every pass: pass ``k`` uses seed ``f(seed, k)``.

    Holds only integers, so it pickles into ``ddp_spawn`` children (a ``torch.Generator``
    does not survive that trip)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.seed = seed
        self.passes = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed((self.seed * 2_654_435_761 + self.passes) % (1 << 63))
        self.passes += 1
        yield from torch.randperm(self.n, generator=g).tolist()


def make_loader(tensors: Sequence[torch.Tensor], batch: int, shuffle: bool, seed: int,
                pin_memory: bool = False) -> DataLoader:  # type: ignore[type-arg]
    """Batches of ``tensors`` (shuffled with ``seed`` when ``shuffle``), fetched by indexing."""
    ds = TensorBatches(*tensors)
    sampler = SeededShuffle(len(ds), seed) if shuffle else None
    return DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=0, collate_fn=_as_batch,
                      pin_memory=pin_memory)


def _split_tensors(data: DataBundle, splits: Sequence[str]) -> list[torch.Tensor]:
    for s in splits:
        if s not in data.labels:
            raise ConfigError(f"dataset '{data.name}' has no split '{s}'; splits: {', '.join(data.labels)}.")
    if len(splits) == 1:
        return [*data.inputs[splits[0]], data.labels[splits[0]]]
    merged = [torch.cat([data.inputs[s][m] for s in splits]) for m in range(len(data.modalities))]
    return [*merged, torch.cat([data.labels[s] for s in splits])]


# --- the Trainer ---------------------------------------------------------------------------


def _gpu_available(accelerator: str) -> bool:
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def resolve_precision(config: TrainConfig) -> str:
    """``config.precision`` with ``auto`` made concrete for this machine."""
    if config.precision != "auto":
        return config.precision
    if _gpu_available(config.accelerator) and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def _resolve_strategy(config: TrainConfig) -> str:
    if config.strategy != "auto":
        return config.strategy
    many = config.devices == -1 or (isinstance(config.devices, int) and config.devices > 1)
    if config.devices == "auto" and _gpu_available(config.accelerator):
        many = torch.cuda.device_count() > 1
    return "ddp_spawn" if many else "auto"


def build_trainer(config: TrainConfig, callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """A quiet Lightning Trainer for one trial (no logger, checkpoints, bars or sanity steps)."""
    return pl.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        precision=resolve_precision(config),  # type: ignore[arg-type]
        strategy=_resolve_strategy(config),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
        deterministic=config.deterministic,
    )


def fit_spec(
    spec: ArchSpec,
    data: DataBundle,
    config: TrainConfig,
    seed: int,
    report: Callable[[int, float], bool] | None = None,
    splits: tuple[str, ...] = ("train",),
    extra_callbacks: Sequence[pl.Callback] = (),
) -> FitResult:
    """Train ``spec`` on ``data`` (train split, or several merged) and validate every epoch.

    ``report(epoch, val_acc) -> bool`` receives the fidelity signal after every epoch
    (False stops the trial); ``extra_callbacks`` are added to the trial's own.

    The same ``seed`` gives the same weights and history on CPU; the global RNG state is
    restored afterwards. Raises :class:`hadanas.exceptions.TrialFailed` on non-finite loss.
    """
    if list(spec.inputs) != list(data.modalities):
        raise ConfigError(f"spec takes inputs {list(spec.inputs)}, but dataset '{data.name}' has "
                          f"{list(data.modalities)}.")
    t0 = time.perf_counter()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        module = SpecModule(
            spec.to_dict(), data.input_shapes, data.num_classes,
            lr=config.lr, weight_decay=config.weight_decay, epochs=config.epochs,
        )
        fidelity = FidelityCallback(report)
        callbacks: list[pl.Callback] = [fidelity, ProgressLog(label=f"{spec.fingerprint()[:8]} ")]
        if config.bn_batches:
            callbacks.insert(0, BNRecalibration(config.bn_batches))
        if config.early_stop_patience:
            callbacks.append(pl.callbacks.EarlyStopping(
                "val_acc", mode="max", patience=config.early_stop_patience, check_finite=False))
        latency = None
        if config.latency_batch:
            latency = LatencyCallback(data.input_shapes, config.latency_batch)
            callbacks.append(latency)
        callbacks.extend(extra_callbacks)
        trainer = build_trainer(config, callbacks)
        pin = trainer.accelerator.__class__.__name__ == "CUDAAccelerator"
        train = make_loader(_split_tensors(data, splits), config.batch_size, True, seed, pin)
        val = make_loader(_split_tensors(data, ("val",)), 512, False, seed, pin)
        t_fit = time.perf_counter()
        trainer.fit(module, train, val)
        fit_s = time.perf_counter() - t_fit
    if trainer.interrupted:
        raise KeyboardInterrupt
    history = fidelity.history
    if not history and HISTORY_KEY in trainer.callback_metrics:  # ddp_spawn: callbacks ran in children
        history = [float(v) for v in trainer.callback_metrics[HISTORY_KEY]]
    lat = latency.latency_ms if latency is not None else None
    if latency is not None and lat is None and "latency_ms" in trainer.callback_metrics:
        lat = float(trainer.callback_metrics["latency_ms"])
    state = {k: v.detach().cpu().contiguous() for k, v in module.model.state_dict().items()}
    return FitResult(
        val_accuracy=history[-1] if history else 0.0,
        history=history,
        epochs=len(history),
        stopped_early=len(history) < config.epochs,
        wall_s=time.perf_counter() - t0,
        device=str(trainer.strategy.root_device),
        precision=str(trainer.precision),
        latency_ms=lat,
        fit_s=fit_s,
        state_dict=state,
    )


def evaluate(model: torch.nn.Module, data: DataBundle, split: str = "test", batch: int = 512) -> float:
    """Accuracy of ``model`` on a split (inference mode, on the model's device)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    with torch.inference_mode():
        for *xs, y in make_loader(_split_tensors(data, (split,)), batch, False, 0):
            logits = model(*(x.to(device) for x in xs))
            correct += int((logits.argmax(1).cpu() == y).sum())
    return correct / len(data.labels[split])
