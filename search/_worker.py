"""The Ray actor that trains trials. One per concurrent slot; data is loaded once per actor."""

from __future__ import annotations

import dataclasses
import os
import traceback
from typing import Any

__all__ = ["TrialWorker", "run_job"]


class TrialWorker:
    """Trains specs on one dataset. Wrapped with ``ray.remote`` by the runner."""

    def __init__(self, dataset: str, subset: int | None, data_seed: int, threads: int,
                 user_ops: tuple[Any, ...] = ()) -> None:
        import torch

        from hadanas.spaces import default_registry
        from hadanas.trainers import is_dataset, load_dataset, quiet_lightning

        torch.set_num_threads(max(1, threads))
        quiet_lightning()
        # Ops the user registered in the driver (their factories travel by value).
        for info in user_ops:
            if info.name not in default_registry:
                default_registry.register(
                    info.name, family=info.family, arity=info.arity, knobs=info.knobs,
                    description=info.description, near_identity=info.near_identity,
                )(info.factory)
        self.data = load_dataset(dataset, data_seed, subset) if is_dataset(dataset) else None

    def info(self) -> dict[str, Any]:
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        if job.get("table"):  # benchmark mode on Ray: look up, do not train
            from hadanas.search._nb201 import NB201Table
            from hadanas.spaces import get_space

            return run_table_job(job, NB201Table.load(job["table"]), get_space("nb201"))
        from hadanas.trainers import TrainConfig

        return run_job(job, self.data, TrainConfig(**job["train"]))


def _reporter(job: dict[str, Any]) -> Any:
    """The per-epoch report to the rung board (early stopping), or None."""
    board = job.get("board")
    if board is None:
        return None
    key = str(job["key"])
    if hasattr(board, "report") and hasattr(board.report, "remote"):
        import ray

        return lambda epoch, acc: bool(ray.get(board.report.remote(key, epoch, acc)))
    return lambda epoch, acc: bool(board.report(key, epoch, acc))


def run_table_job(job: dict[str, Any], table: Any, space: Any) -> dict[str, Any]:
    """NAS-Bench-201 benchmark mode: look the cell up instead of training."""
    from hadanas.search._nb201 import FIDELITY_EPOCHS
    from hadanas.spaces import ArchSpec

    spec = ArchSpec.from_dict(job["spec"])
    row = table.lookup(space, spec)
    report = _reporter(job)
    history, epochs = [row.valid_12], [FIDELITY_EPOCHS[0]]
    stopped = report is not None and not report(FIDELITY_EPOCHS[0], row.valid_12)
    if not stopped:
        history.append(row.valid_200)
        epochs.append(FIDELITY_EPOCHS[1])
    return {"state": "complete", "val_accuracy": history[-1], "history": history,
            "history_epochs": epochs, "epochs": epochs[-1], "stopped_early": stopped,
            "wall_time_s": 0.0, "device": "table", "latency_ms": None, "weights": None,
            "pid": os.getpid()}


def run_job(job: dict[str, Any], data: Any, train: Any) -> dict[str, Any]:
    """Train ``job['spec']``; return values and weights, or ``{'state': 'fail', 'reason': ...}``."""
    import torch
    from safetensors.torch import save as save_safetensors

    from hadanas.exceptions import TrialFailed
    from hadanas.spaces import ArchSpec
    from hadanas.trainers import fit_spec

    info: dict[str, Any] = {"pid": os.getpid()}
    try:
        import ray

        if ray.is_initialized():
            info["node_id"] = ray.get_runtime_context().get_node_id()
    except Exception:  # pragma: no cover - outside Ray
        pass
    spec = ArchSpec.from_dict(job["spec"])
    if job.get("latency"):  # measured by the trainer's latency callback on the trial's device
        train = dataclasses.replace(train, latency_batch=int(job.get("latency_batch") or 1))
    try:
        res = fit_spec(spec, data, train, seed=int(job["seed"]), report=_reporter(job))
    except TrialFailed as exc:
        return {"state": "fail", "reason": str(exc), **info}
    except torch.cuda.OutOfMemoryError as exc:  # type: ignore[attr-defined]
        return {"state": "fail", "reason": f"out of memory: {str(exc).splitlines()[0]}", **info}
    except MemoryError:
        return {"state": "fail", "reason": "out of memory", **info}
    except Exception as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{os.path.basename(last.filename)}:{last.lineno}"
        return {"state": "fail", "reason": f"{type(exc).__name__}: {exc} (at {where})", **info}
    return {
        "state": "complete",
        "val_accuracy": res.val_accuracy,
        "history": res.history,
        "epochs": res.epochs,
        "stopped_early": res.stopped_early,
        "wall_time_s": res.wall_s,
        "device": res.device,
        "latency_ms": res.latency_ms if job.get("latency") else None,
        "weights": save_safetensors(res.state_dict),
        **info,
    }
