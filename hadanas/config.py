"""Typed configuration of a search; the CLI and YAML files both produce a :class:`SearchConfig`."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hadanas.exceptions import ConfigError, close_matches

__all__ = ["SearchConfig", "OBJECTIVES", "SAMPLERS", "load_yaml_config"]

#: objective name -> Optuna direction.
OBJECTIVES: dict[str, str] = {
    "accuracy": "maximize",
    "flops": "minimize",
    "params": "minimize",
    "latency": "minimize",
}
SAMPLERS = ("auto", "local", "nsga2", "tpe", "random")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "64-true", "auto")
#: Lightning strategies a trial may use. Trials run inside Ray actors, where Lightning's
#: script-relaunching ``ddp`` launcher cannot start: ``ddp`` runs as ``ddp_spawn`` there.
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_find_unused_parameters_true",
              "ddp_spawn_find_unused_parameters_true", "fsdp", "single_device")
_SPAWNED = {"ddp": "ddp_spawn", "ddp_find_unused_parameters_true": "ddp_spawn_find_unused_parameters_true"}


def _shown(v: Any) -> str:
    """A user-given name in a one-line message: control characters escaped, at most 60 chars."""
    text = repr(str(v))[1:-1]
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class SearchConfig:
    """Everything a search needs. Every field is also a YAML key and a ``--flag``."""

    space: str = "full"
    dataset: str = "digits"
    trials: int = 32
    epochs: int = 3
    objectives: tuple[str, ...] = ("accuracy", "flops")
    sampler: str = "auto"  # local search with one objective, NSGA-II with several
    seed: int = 0
    storage: str = "sqlite:///hadanas.db"
    study: str | None = None
    ray_address: str | None = None
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    out: str = "hadanas-out"
    artifacts: str | None = None
    max_flops: float | None = None
    max_params: float | None = None
    max_retries: int = 2
    resume: bool = False
    subset: int | None = None
    batch_size: int = 128
    lr: float = 1e-2
    precision: str = "32-true"
    devices: int | str = 1
    strategy: str = "auto"
    weight_decay: float = 1e-4
    population: int | None = None
    latency_batch: int = 1
    data_seed: int = 0
    early_stopping: bool = False
    eta: int = 3
    min_epochs: int = 1
    benchmark_file: str | None = None

    def __post_init__(self) -> None:
        try:
            self._check_objectives_and_validate()
        except RecursionError:  # a value nested thousands deep (its repr in the message recursed)
            def deep(v: Any) -> bool:
                try:
                    repr(v)
                    return False
                except RecursionError:
                    return True
            name = next((f.name for f in fields(self) if deep(getattr(self, f.name))), "a value")
            raise ConfigError(f"'{name}' is nested too deeply to be a config value.") from None

    def _check_objectives_and_validate(self) -> None:
        if isinstance(self.objectives, str):
            self.objectives = tuple(o.strip() for o in self.objectives.split(",") if o.strip())
        elif isinstance(self.objectives, (list, tuple)) and all(isinstance(o, str) for o in self.objectives):
            self.objectives = tuple(self.objectives)
        else:
            raise ConfigError(
                f"'objectives' must be a list or comma-separated string of {', '.join(OBJECTIVES)}, "
                f"but got {self.objectives!r}."
            )
        self.validate()

    def validate(self) -> None:
        for name in ("space", "dataset", "storage", "out", "sampler", "precision"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise ConfigError(f"'{name}' must be a non-empty string, but got {v!r}.")
        for name in ("study", "ray_address", "artifacts", "benchmark_file"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise ConfigError(f"'{name}' must be a non-empty string when given, but got {v!r}.")
        for name in ("space", "dataset", "storage", "sampler", "precision", "study", "ray_address"):
            v = getattr(self, name)
            try:  # names stored in the database (a non-UTF-8 command-line byte arrives as a surrogate)
                v is None or v.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigError(f"'{name}' must be valid UTF-8 text, but got {v!r}.") from None
        if not isinstance(self.resume, bool):
            raise ConfigError(f"'resume' must be true or false, but got {self.resume!r}.")
        def positive_int(name: str, lo: int = 1, hi: int | None = None) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
                rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
                raise ConfigError(f"'{name}' must be an integer {rng}, but got {v!r}.")

        positive_int("trials", 1, 1_000_000)
        positive_int("epochs", 1, 10_000)
        positive_int("max_concurrent", 1, 4096)
        positive_int("max_retries", 0, 100)
        positive_int("batch_size", 1, 1 << 20)
        positive_int("latency_batch", 1, 1 << 16)
        positive_int("eta", 2, 100)
        positive_int("min_epochs", 1, 10_000)
        if not isinstance(self.early_stopping, bool):
            raise ConfigError(f"'early_stopping' must be true or false, but got {self.early_stopping!r}.")
        if self.benchmark_file is not None:
            if self.space != "nb201":
                raise ConfigError(
                    f"--benchmark-file needs --space nb201 (the table's cell), but the space is '{_shown(self.space)}'."
                )
            if "latency" in self.objectives:
                raise ConfigError("the NAS-Bench-201 table has no latency; use accuracy,flops or accuracy,params.")
        positive_int("seed", 0, 2**32 - 1)  # the samplers' NumPy seeds stop at 2**32 - 1
        positive_int("data_seed", 0, 2**32 - 1)
        if not self.objectives:
            raise ConfigError(
                f"'objectives' needs at least one of {', '.join(OBJECTIVES)}, e.g. accuracy,flops."
            )
        for o in self.objectives:
            if o not in OBJECTIVES:
                raise ConfigError(
                    f"unknown objective '{_shown(o)}'; valid objectives: {', '.join(OBJECTIVES)}."
                    + close_matches(o, OBJECTIVES)
                )
        if len(set(self.objectives)) != len(self.objectives):
            raise ConfigError(f"'objectives' lists an objective twice: {_shown(','.join(self.objectives))}.")
        if self.sampler not in SAMPLERS:
            raise ConfigError(
                f"'sampler' must be one of {', '.join(SAMPLERS)}, but got {self.sampler!r}."
                + close_matches(str(self.sampler), SAMPLERS)
            )
        for name in ("cpus_per_trial", "gpus_per_trial"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"'{name}' must be a finite number >= 0, but got {v!r}.")
        if self.cpus_per_trial <= 0 and self.gpus_per_trial <= 0:
            raise ConfigError("a trial needs some resources: set cpus_per_trial or gpus_per_trial > 0.")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise ConfigError(
                f"'gpus_per_trial' above 1 must be a whole number, but got {self.gpus_per_trial}."
            )
        for name in ("max_flops", "max_params"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)
                                  or not math.isfinite(v) or v <= 0):
                raise ConfigError(f"'{name}' must be a positive finite number, but got {v!r}.")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not 0 < self.lr < 10:
            raise ConfigError(f"'lr' must be a number in (0, 10), but got {self.lr!r}.")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"'precision' must be one of {', '.join(PRECISIONS)}, but got {self.precision!r}."
            )
        if not isinstance(self.weight_decay, (int, float)) or isinstance(self.weight_decay, bool) \
                or not math.isfinite(self.weight_decay) or not 0 <= self.weight_decay < 10:
            raise ConfigError(f"'weight_decay' must be a number in [0, 10), but got {self.weight_decay!r}.")
        d = self.devices
        if isinstance(d, str) and re.fullmatch(r"-?[0-9]{1,6}", d.strip()):
            d = self.devices = int(d)  # '2' from a YAML string or the CLI
        if not (d == "auto" or (isinstance(d, int) and not isinstance(d, bool) and (d == -1 or 1 <= d <= 1024))):
            raise ConfigError(
                f"'devices' must be a count in 1..1024, -1 (all the trial's devices) or 'auto', but got {d!r}."
            )
        if isinstance(d, int) and d > 1 and 0 < self.gpus_per_trial < d:
            raise ConfigError(
                f"'devices' {d} needs gpus_per_trial >= {d} (a trial sees only the GPUs Ray gives it), "
                f"but gpus_per_trial is {self.gpus_per_trial:g}."
            )
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"'strategy' must be one of {', '.join(STRATEGIES)}, but got {self.strategy!r}."
                + close_matches(str(self.strategy), STRATEGIES)
            )
        if self.subset is not None:
            positive_int("subset", 30)
        if self.population is not None:
            positive_int("population", 2, 10_000)
        if self.storage.startswith("sqlite") and self.storage.rstrip("/").split("///")[-1] in ("", ":memory:", "sqlite:"):
            raise ConfigError(
                "an in-memory SQLite store cannot hold a study beyond one process; "
                "use a file such as sqlite:///hadanas.db."
            )
        if not isinstance(self.storage, str) or "://" not in self.storage:
            raise ConfigError(
                f"'storage' must be a database URL such as sqlite:///hadanas.db or "
                f"postgresql+psycopg://user@host/db, but got {self.storage!r}."
            )

    def train_settings(self) -> dict[str, Any]:
        """The ``TrainConfig`` keyword arguments of every trial of this search.

        ``precision='auto'`` stays ``auto`` (the trainer makes it ``bf16-mixed`` on a GPU
        that supports it, ``32-true`` elsewhere); ``strategy='ddp'`` becomes ``ddp_spawn``,
        the DDP launcher that starts inside a Ray actor.
        """
        return {
            "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
            "weight_decay": float(self.weight_decay), "precision": self.precision,
            "accelerator": "gpu" if self.gpus_per_trial > 0 else "cpu",
            "devices": self.devices, "strategy": _SPAWNED.get(self.strategy, self.strategy),
        }

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.objectives]

    def replace(self, **changes: Any) -> SearchConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["objectives"] = list(self.objectives)
        return d

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_mapping(cls, data: Any, base: SearchConfig | None = None, source: str = "config") -> SearchConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source} must be a mapping of keys to values, but got {type(data).__name__}.")
        keys = cls.keys()
        changes = {}
        for k, v in data.items():
            key = str(k).replace("-", "_")
            if key not in keys:
                raise ConfigError(
                    f"{source}: unknown key '{_shown(k)}'." + close_matches(key, keys)
                    + f" Valid keys: {', '.join(keys)}."
                )
            changes[key] = v
        try:
            return dataclasses.replace(base or cls(), **changes)
        except TypeError as exc:  # pragma: no cover - replace only fails on unknown keys
            raise ConfigError(f"{source}: {exc}") from None


def load_yaml_config(path: str | Path, base: SearchConfig | None = None) -> SearchConfig:
    """Read a YAML file whose keys are :class:`SearchConfig` fields."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file '{path}' cannot be read as UTF-8 text: {exc}.") from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"config file '{path}' is nested too deeply to be a config.") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. an integer of over 4300 digits
        msg = " ".join(str(exc).split())
        raise ConfigError(f"config file '{path}' is not valid YAML: {msg[:200]}") from None
    if data is None:
        data = {}
    return SearchConfig.from_mapping(data, base, source=f"config file '{path}'")


