"""Run a search: Optuna proposes, Ray trains, the RDB store records.

The driver owns the study (ask/tell); a pool of long-lived Ray actors trains the specs,
so data and imports are paid once per actor, not once per trial. Every state change is
written to the store as it happens, so a killed driver loses nothing that finished.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import FrozenTrial, TrialState

import hadanas
from hadanas._logging import get_logger
from hadanas.config import SearchConfig
from hadanas.exceptions import ConfigError, StoreError
from hadanas.search._objectives import format_value, objective_values
from hadanas.search._batched import BatchedStorage
from hadanas.search._pareto import FrontTracker, first_of_each, pareto_mask, to_minimization
from hadanas.search._store import default_artifact_dir, mask_url, open_storage
from hadanas.spaces import ArchSpec, SearchSpace, build_model, count_flops, count_params, get_space

__all__ = ["run_search", "release_workers", "SearchResult", "front_trials", "make_sampler"]

log = get_logger(__name__)


#: What ``SearchResult.stats`` counts for this run (not the whole study).
_STATS = ("trained", "stopped_early", "duplicates", "infeasible", "failed", "retried", "epochs")


@dataclass
class SearchResult:
    study_name: str
    storage: str
    completed: int
    failed: int
    front: list[FrozenTrial]
    best_accuracy: float | None
    wall_time_s: float
    objectives: tuple[str, ...]
    report: Path | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def _constraints(trial: FrozenTrial) -> list[float]:
    return list(trial.user_attrs.get("constraints", [0.0]))


def make_sampler(config: SearchConfig, space: SearchSpace | None = None) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of ``config`` (``space``: the searched space, default
    ``config.space``; the local search compares architectures through it)."""
    constrained = config.max_flops is not None or config.max_params is not None
    cf = _constraints if constrained else None
    name = config.sampler
    if name == "auto":
        name = "local" if len(config.objectives) == 1 else "nsga2"
    if name == "local":
        from hadanas.search._strategies import LocalSearchSampler

        return LocalSearchSampler(seed=config.seed, constraints_func=cf,
                                  n_startup_trials=min(10, max(2, config.trials // 10)),
                                  resolve=(space or get_space(config.space)).resolve)
    if name == "nsga2":
        # Optuna's samplers read the constraints each trial records (Trial.set_constraint).
        pop = config.population or max(8, min(50, config.trials // 4))
        return optuna.samplers.NSGAIISampler(population_size=pop, seed=config.seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=config.seed, multivariate=True,
                                          n_startup_trials=min(10, max(2, config.trials // 4)))
    return optuna.samplers.RandomSampler(seed=config.seed)


def feasible_complete(study: optuna.Study) -> list[FrozenTrial]:
    return [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("status") != "infeasible" and t.values is not None
        and all(math.isfinite(v) for v in t.values)
    ]


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible, completed, non-dominated trials of ``study``, by trial number; an
    architecture on it more than once (a duplicate trial answered from the store) is listed
    once, as its first trial."""
    trials = feasible_complete(study)
    if not trials:
        return []
    directions = ["maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize"
                  for d in study.directions]
    mask = pareto_mask(to_minimization(np.array([t.values for t in trials]), directions))
    keep = first_of_each(np.flatnonzero(mask), lambda i: trials[i].number,
                         lambda i: trials[i].user_attrs.get("fingerprint") or tuple(trials[i].values))
    return [trials[i] for i in keep]


# Idle actors kept between searches of one process (tests, benchmarks, ablations), keyed by
# what an actor holds: the Ray session, the dataset and the resources it was created with.
_IDLE: dict[tuple[Any, ...], list[Any]] = {}


def release_workers() -> int:
    """Stop the worker actors kept by ``run_search(..., keep_workers=True)``; return how many."""
    n = 0
    for actors in list(_IDLE.values()):
        import ray

        for a, _ in actors:
            try:
                ray.kill(a, no_restart=True)
                n += 1
            except Exception:
                pass
    _IDLE.clear()
    return n


class _Pool:
    """Long-lived Ray actors, one per concurrent slot; reused by later searches in the process."""

    def __init__(self, config: SearchConfig, n: int) -> None:
        import ray

        from hadanas.search._worker import TrialWorker

        self.ray = ray
        self.cls = ray.remote(TrialWorker).options(
            num_cpus=config.cpus_per_trial,
            num_gpus=config.gpus_per_trial,
            max_restarts=0,
        )
        threads = max(1, int(config.cpus_per_trial))
        from hadanas.spaces import default_registry

        user_ops = tuple(i for i in default_registry.infos()
                         if not getattr(i.factory, "__module__", "").startswith("hadanas."))
        _ship_by_value(user_ops)
        self.args = (config.dataset, config.subset, config.data_seed, threads, user_ops)
        try:  # the Ray session: actors never outlive it
            session = ray._private.worker.global_worker.node.session_name
        except AttributeError:  # pragma: no cover - Ray internals moved: no reuse
            session = object()
        self.key = (session, *self.args[:4], tuple((i.name, id(i.factory)) for i in user_ops),
                    config.cpus_per_trial, config.gpus_per_trial)
        cached = _IDLE.pop(self.key, [])
        for other in list(_IDLE):  # kept actors of another kind would hold the resources
            self.shutdown([a for a, _ in _IDLE.pop(other)])
        self.idle = [a for a, _ in cached[:n]]
        #: actor -> ObjectRef of its info() (pid, node), asked before any job is queued on it.
        self.info = dict(cached[:n])
        for _ in range(n - len(self.idle)):
            self._spawn()
        self.owned = list(self.idle)
        self.shutdown([a for a, _ in cached[n:]])

    def _spawn(self) -> Any:
        actor = self.cls.remote(*self.args)
        self.info[actor] = actor.info.remote()
        self.idle.append(actor)
        return actor

    def replace(self, dead: Any) -> None:
        self.shutdown([dead])
        self.owned.remove(dead)
        self.info.pop(dead, None)
        self.owned.append(self._spawn())

    def release(self, keep: bool) -> None:
        """Keep the idle actors for the next search in this process, or kill them all."""
        busy = [a for a in self.owned if a not in self.idle]
        self.shutdown(busy)
        if keep:
            _IDLE[self.key] = [(a, self.info[a]) for a in self.idle]
        else:
            self.shutdown(self.idle)

    def shutdown(self, actors: list[Any]) -> None:
        for a in actors:
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:
                pass


def _ship_by_value(user_ops: tuple[Any, ...]) -> None:
    """Send the modules of user-registered ops to the workers by value: a module the driver
    imported from its own folder (``import my_ops``) need not be importable on the workers."""
    import sys

    from ray import cloudpickle

    for info in user_ops:
        name = getattr(info.factory, "__module__", "") or ""
        module = sys.modules.get(name)
        if module is None or name == "__main__" or name.split(".")[0] in ("hadanas", "torch", "ray"):
            continue
        try:
            cloudpickle.register_pickle_by_value(module)
        except (ValueError, AttributeError):  # pragma: no cover - a module cloudpickle refuses
            pass


def _creation_error(exc: BaseException) -> str | None:
    """The last line of the error raised while a worker actor was being created, if that is
    why it died (an op module, a dataset or a dependency the worker cannot load)."""
    text = str(exc)
    if "creation task" not in text:
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errs = [ln for ln in lines if ("Error:" in ln or "Exception:" in ln) and not ln.startswith("ray.")]
    return (errs[-1] if errs else lines[-1])[:300]


def _init_ray(config: SearchConfig) -> bool:
    """Start or attach to Ray; return True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    import signal
    import threading

    # Ray's core installs its own SIGTERM handler (it aborts the process); give back the
    # caller's Python handler (the CLI stops cleanly on SIGTERM, failing running trials).
    main = threading.current_thread() is threading.main_thread()
    term = signal.getsignal(signal.SIGTERM) if main else None
    try:
        _ray_init(config, ray)
    finally:
        if callable(term):
            signal.signal(signal.SIGTERM, term)
    return True


def _ray_init(config: SearchConfig, ray: Any) -> None:
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                              "log_to_driver": True}
    if config.ray_address:
        token = Path.home() / ".ray" / "auth_token"
        if token.exists():
            os.environ.setdefault("RAY_AUTH_MODE", "token")
        try:
            ray.init(address=config.ray_address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"cannot attach to the Ray cluster at '{config.ray_address}': {msg}") from None
    else:
        import logging

        # A runtime of our own on this machine: Ray's notice that it enabled token
        # authentication for it is noise on every run (attaching to a cluster keeps it).
        notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
        level = notice.level
        notice.setLevel(logging.ERROR)
        try:
            ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
        finally:
            notice.setLevel(level)


def _slots(config: SearchConfig) -> int:
    import ray

    res = ray.cluster_resources()
    n = config.max_concurrent
    if config.cpus_per_trial > 0:
        n = min(n, int(res.get("CPU", 0) // config.cpus_per_trial))
    if config.gpus_per_trial > 0:
        n = min(n, int(res.get("GPU", 0) // config.gpus_per_trial))
    if n < 1:
        raise ConfigError(
            f"the Ray cluster ({res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs) cannot fit one "
            f"trial of {config.cpus_per_trial:g} CPUs and {config.gpus_per_trial:g} GPUs."
        )
    if n < config.max_concurrent:
        log.info("running %d trials at once (the cluster fits %d of %g CPU / %g GPU each)",
                 n, n, config.cpus_per_trial, config.gpus_per_trial)
    return n


def _open_study(config: SearchConfig, storage: Any, space: SearchSpace | None = None) -> optuna.Study:
    from datetime import datetime, timezone

    names = {s.study_name: s for s in storage.get_all_studies()}
    name = config.study
    if config.resume and name is None:
        if not names:
            raise StoreError("--resume found no study in the store. Start one with 'hadanas search'.")
        name = max(names.values(), key=lambda s: s._study_id).study_name
    if config.resume and name not in names:
        raise StoreError(f"--resume: no study named '{name}' in the store.")
    if name is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{config.space}-{config.dataset}-{stamp}"
        i = 1
        while name in names:
            i += 1
            name = f"{config.space}-{config.dataset}-{stamp}-{i}"
    if name in names:
        existing = names[name]
        attrs = existing.user_attrs
        if attrs.get("objectives") and list(attrs["objectives"]) != list(config.objectives):
            raise ConfigError(
                f"study '{name}' optimises {','.join(attrs['objectives'])}, not "
                f"{','.join(config.objectives)}; pass the same --objectives or a new --study."
            )
        for key in ("space", "dataset"):
            if attrs.get(key) and attrs[key] != getattr(config, key):
                raise ConfigError(
                    f"study '{name}' searches {key} '{attrs[key]}', not '{getattr(config, key)}'; "
                    f"pass --{key} {attrs[key]} or a new --study."
                )
    study = optuna.create_study(
        storage=storage, study_name=name, directions=config.directions,
        sampler=make_sampler(config, space), load_if_exists=True,
    )
    if "hadanas_version" not in study.user_attrs:
        art = Path(config.artifacts).resolve() if config.artifacts else default_artifact_dir(config.storage)
        cfg = config.to_dict()
        cfg["storage"] = mask_url(config.storage)
        # hadanas_version last: another process opening the study at the same moment takes
        # its presence to mean that every other attr is there.
        for k, v in {
            "space": config.space,
            "dataset": config.dataset,
            "objectives": list(config.objectives),
            "config": cfg,
            "artifact_dir": str(art),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "hadanas_version": hadanas.__version__,
        }.items():
            study.set_user_attr(k, v)
    return study


def _reconcile_stale(study: optuna.Study, me: dict[str, Any] | None = None) -> int:
    """Mark trials left RUNNING by a dead driver as FAIL and queue their specs again; a live
    driver's trials (another process running the same study) are left alone."""
    from hadanas.search._drivers import DRIVER_KEY, driver_alive, driver_identity

    me = me or driver_identity()
    beats = study._storage.get_study_system_attrs(study._study_id)
    n = 0
    live: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.system_attrs.get(DRIVER_KEY)
        if driver_alive(owner, beats, me):
            where = f"{owner.get('host')} pid {owner.get('pid')}"
            live[where] = live.get(where, 0) + 1
            continue
        study._storage.set_trial_user_attr(t._trial_id, "fail_reason",
                                           "the search driver stopped before the trial finished")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number,
                                                      "attempt": int(t.user_attrs.get("attempt", 0)) + 1})
        n += 1
    for where, k in live.items():
        log.info("resume: %d running trial(s) belong to a live search driver (%s): left running", k, where)
    return n


class _RayExecutor:
    """Runs jobs on the actor pool; ``wait`` returns one finished job at a time."""

    def __init__(self, config: SearchConfig, started_ray: bool, keep: bool,
                 idle: Any = None) -> None:
        import ray

        self.idle = idle  # called while waiting for a trial (the driver's heartbeat)
        self.ray = ray
        self.started_ray = started_ray
        self.keep = keep and not started_ray
        self.pool = _Pool(config, _slots(config))
        self.pending: dict[Any, tuple[Any, Any]] = {}

    def slots(self) -> int:
        return len(self.pool.idle)

    def worker_info(self, worker: Any) -> dict[str, Any]:
        from ray.exceptions import RayActorError

        try:  # asked when the actor was created, so it never waits behind a job
            return dict(self.ray.get(self.pool.info[worker], timeout=300))
        except RayActorError as exc:
            cause = _creation_error(exc)
            if cause is None:
                return {}
            # Every worker would fail the same way: one clear error instead of N failed trials.
            raise ConfigError(f"the trial workers cannot start: {cause}") from None
        except Exception:
            return {}

    def submit(self, job: dict[str, Any], token: Any, before: Any = None) -> None:
        """Run ``job`` on an idle worker; ``before(info)`` sees the worker's pid and node first."""
        worker = self.pool.idle.pop()
        if before is not None:
            before(self.worker_info(worker))
        ref = worker.run.remote(job)
        self.pending[ref] = (token, worker)

    def wait(self) -> tuple[Any, dict[str, Any]]:
        from ray.exceptions import RayActorError, WorkerCrashedError

        while True:  # short waits: Ctrl-C and the heartbeat are served between them
            ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=1.0)
            if ready:
                break
            if self.idle is not None:
                self.idle()
        token, worker = self.pending.pop(ready[0])
        try:
            out = self.ray.get(ready[0])
            self.pool.idle.append(worker)
        except (RayActorError, WorkerCrashedError) as exc:
            out = {"state": "died", "reason": f"the trial's worker process died ({type(exc).__name__})"}
            self.pool.replace(worker)
        return token, out

    def tokens(self) -> list[Any]:
        return [t for t, _ in self.pending.values()]

    def close(self) -> None:
        self.pool.release(keep=self.keep)
        if self.started_ray:
            self.ray.shutdown()


class _InlineExecutor:
    """Runs jobs in the driver process (benchmark mode: a table look-up needs no worker)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.done: list[tuple[Any, dict[str, Any]]] = []

    def slots(self) -> int:
        return 0 if self.done else 1

    def submit(self, job: dict[str, Any], token: Any, before: Any = None) -> None:
        if before is not None:
            before({"pid": os.getpid()})
        try:
            out = self.fn(job)
        except Exception as exc:  # a bad cell or table row fails the trial, not the search
            out = {"state": "fail", "reason": f"{type(exc).__name__}: {exc}"}
        self.done.append((token, out))

    def wait(self) -> tuple[Any, dict[str, Any]]:
        return self.done.pop(0)

    def tokens(self) -> list[Any]:
        return [t for t, _ in self.done]

    @property
    def pending(self) -> list[Any]:
        return self.done

    def close(self) -> None:
        pass


def run_search(config: SearchConfig, space: SearchSpace | None = None, *,
               executor: str = "auto", keep_workers: bool = False) -> SearchResult:
    """Run (or resume) the search described by ``config``; return the stored outcome.

    ``executor``: ``"auto"`` trains on Ray and looks benchmark tables up in the driver;
    ``"ray"`` sends table look-ups to the Ray workers too (used to measure orchestration).
    ``keep_workers``: when Ray was already running, keep the idle worker actors (and the
    cluster resources they hold) for the next search in this process; otherwise they are
    stopped. :func:`release_workers` stops kept ones.
    """
    t_start = time.perf_counter()
    space = space or get_space(config.space)
    benchmark = config.benchmark_file is not None
    table = None
    if benchmark:
        from hadanas.search._nb201 import INPUT_SHAPES, NUM_CLASSES, NB201Table

        if config.dataset == "digits":  # the table's data set, for the study's records
            config = config.replace(dataset="nb201-cifar10")

        table = NB201Table.load(config.benchmark_file)
        input_shapes, num_classes = [list(s) for s in INPUT_SHAPES], NUM_CLASSES
        data = None
    else:
        from hadanas.trainers import load_dataset

        data = load_dataset(config.dataset, config.data_seed, config.subset)  # validates early
        if list(data.modalities) != list(space.inputs):
            raise ConfigError(
                f"dataset '{config.dataset}' has inputs {list(data.modalities)}, but space "
                f"'{space.name}' takes {list(space.inputs)}; pick a matching --space or --dataset."
            )
        input_shapes, num_classes = [list(s) for s in data.input_shapes], data.num_classes
    # Each trial's writes go to the store in two transactions (at hand-off and at the end)
    storage = BatchedStorage(open_storage(config.storage))
    if not benchmark:  # the weights' folder must be usable before anything is recorded
        art = Path(config.artifacts).resolve() if config.artifacts else default_artifact_dir(config.storage)
        try:
            art.mkdir(parents=True, exist_ok=True)
            probe = art / ".hadanas-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"the artifacts folder '{art}' cannot be created or written ({exc.strerror}); "
                "pass --artifacts with a writable folder."
            ) from None
    study = _open_study(config, storage, space)
    if "input_shapes" not in study.user_attrs:
        study.set_user_attr("input_shapes", input_shapes)
        study.set_user_attr("num_classes", num_classes)
    art_dir = Path(study.user_attrs["artifact_dir"])
    store = None
    if not benchmark:
        art_dir.mkdir(parents=True, exist_ok=True)
        store = FileSystemArtifactStore(str(art_dir))
    from hadanas.search._drivers import DRIVER_KEY, Heartbeat, driver_identity

    me = driver_identity()  # every trial this run asks for records it; a heartbeat says it lives
    storage.creation_attrs = {DRIVER_KEY: me}
    heartbeat = Heartbeat(study, me)
    heartbeat(force=True)
    if config.resume:
        n = _reconcile_stale(study, me)
        if n:
            log.info("resume: %d unfinished trial(s) marked failed and queued again", n)

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    by_fp: dict[str, Any] = {}
    for t in done:
        fp = t.user_attrs.get("fingerprint")
        if fp and t.user_attrs.get("status") in ("trained", "stopped_early"):
            by_fp.setdefault(fp, t)
    target = config.trials
    n_complete = len(done)
    if n_complete >= target:
        log.info("study '%s' already has %d completed trials (asked for %d)", study.study_name,
                 n_complete, target)
        return _finish(config, study, t_start, stats=dict.fromkeys(_STATS, 0))
    log.info("study '%s' in %s: %d/%d trials done; space '%s' (%s architectures), %s, "
             "objectives %s", study.study_name, mask_url(config.storage), n_complete, target,
             space.name, f"{space.size():.3g}",
             f"benchmark table '{config.benchmark_file}'" if benchmark else f"dataset '{config.dataset}'",
             ",".join(config.objectives))

    # Early stopping: one rung board shared by all workers.
    board: Any = None
    if config.early_stopping:
        from hadanas.search._asha import RungBoard, rung_epochs

        if benchmark:
            from hadanas.search._nb201 import FIDELITY_EPOCHS

            rungs = list(FIDELITY_EPOCHS[:-1])
        else:
            rungs = rung_epochs(config.min_epochs, config.eta, config.epochs)
        board = RungBoard(rungs, config.eta)
        earlier = [  # what the stored trials reached at each epoch: the rungs start from it
            (str(t.number), list(t.user_attrs.get("history") or []), t.user_attrs.get("history_epochs"))
            for t in done if t.user_attrs.get("status") in ("trained", "stopped_early")
        ]
        seeded = board.seed(earlier)
        log.info("early stopping: rungs at epochs %s, eta %d (%d earlier results)", rungs, config.eta, seeded)

    if executor not in ("auto", "ray"):
        raise ConfigError(f"executor must be 'auto' or 'ray', but got {executor!r}.")
    use_ray = not benchmark or executor == "ray"
    if not use_ray:
        from hadanas.search._worker import run_table_job

        runner: Any = _InlineExecutor(lambda job: run_table_job(job, table, space))
    else:
        started_ray = _init_ray(config)
        runner = _RayExecutor(config, started_ray, keep_workers, idle=heartbeat)
        if board is not None:
            import ray

            board = ray.remote(num_cpus=0)(type(board)).remote(board.rungs, config.eta)
            ray.get(board.seed.remote(earlier))  # the workers share this one

    train = {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
             "precision": config.precision,
             "accelerator": "gpu" if config.gpus_per_trial > 0 else "cpu"}
    need_latency = "latency" in config.objectives
    cost_cache: dict[str, tuple[int, int]] = {}
    inflight_fp: set[str] = set()
    waiting_dups: dict[str, list[optuna.Trial]] = {}
    stats = dict.fromkeys(_STATS, 0)
    asked = 0
    max_asks = 4 * target + 20  # guards against an endless stream of failures

    tracker: FrontTracker | None = None
    best_acc: float | None = None
    minimize = np.array([-1.0 if d == "maximize" else 1.0 for d in config.directions])

    def progress(trial: optuna.Trial | FrozenTrial, status: str, values: list[float] | None,
                 accuracy: float | None) -> None:
        nonlocal tracker, best_acc
        if not log.isEnabledFor(20):
            return
        feasible = status != "infeasible" and values is not None and all(math.isfinite(v) for v in values)
        if tracker is None:  # the first line reads the stored history once; later ones add a point
            prior = [t for t in feasible_complete(study) if t.number != trial.number]
            tracker = FrontTracker(np.array([t.values for t in prior]) * minimize if prior else None)
            accs = [t.user_attrs.get("val_accuracy") for t in prior]
            best_acc = max((a for a in accs if a is not None), default=None)
        if feasible:
            tracker.add(np.asarray(values, dtype=float) * minimize)
            if accuracy is not None:
                best_acc = accuracy if best_acc is None else max(best_acc, accuracy)
        vals = ""
        if values is not None:
            vals = " ".join(f"{o} {format_value(o, v)}" for o, v in zip(config.objectives, values))
        log.info("[%*d/%d] trial %d %s %s | best acc %s | front %d", len(str(target)),
                 n_complete, target, trial.number, status, vals,
                 f"{best_acc:.4f}" if best_acc is not None else "-", len(tracker))

    def tell_complete(trial: optuna.Trial, attrs: dict[str, Any], status: str) -> list[float]:
        nonlocal n_complete
        attrs = {**attrs, "status": status}
        for k, v in attrs.items():
            if v is not None:
                trial.set_user_attr(k, v)
        values = objective_values({**trial.user_attrs, **attrs}, config.objectives)
        study.tell(trial, values)
        n_complete += 1
        progress(trial, status, values, attrs.get("val_accuracy"))
        return values

    def static(spec: ArchSpec) -> tuple[int, int]:
        fp = spec.fingerprint()
        if fp not in cost_cache:
            if benchmark:
                from hadanas.search._nb201 import nb201_costs

                cost_cache[fp] = nb201_costs(space, spec)
            else:
                model = build_model(spec, input_shapes, num_classes)
                cost_cache[fp] = (count_params(model), count_flops(model, input_shapes))
        return cost_cache[fp]

    def launch() -> bool:
        """Ask for one trial and start, answer or record it. False when nothing more to ask."""
        nonlocal asked
        if asked >= max_asks:
            return False
        asked += 1
        heartbeat()
        trial = study.ask()
        attempt = int(trial.user_attrs.get("attempt", 0))
        try:
            spec = space.suggest(trial)
            params, flops = static(spec)
        except Exception as exc:  # an op that cannot even be built: record, go on
            trial.set_user_attr("fail_reason", f"building the model failed: {type(exc).__name__}: {exc}")
            study.tell(trial, state=TrialState.FAIL)
            stats["failed"] += 1
            return True
        fp = spec.fingerprint()
        violations = []
        if config.max_flops is not None:
            violations.append(float(flops - config.max_flops))
        if config.max_params is not None:
            violations.append(float(params - config.max_params))
        for i, v in enumerate(violations):  # what Optuna's samplers read (named as they name a list)
            trial.set_constraint(str(i), v)
        base = {"spec": spec.to_dict(), "fingerprint": fp, "params": params, "flops": flops,
                "constraints": violations or [0.0], "summary": spec.summary()}
        if benchmark:
            base["arch_str"] = space.to_nb201(spec)
        if any(v > 0 for v in violations):
            stats["infeasible"] += 1
            tell_complete(trial, {**base, "val_accuracy": 0.0, "epochs": 0,
                                  "latency_ms": float("inf") if need_latency else None}, "infeasible")
            return True
        if fp in by_fp:
            src = by_fp[fp]
            stats["duplicates"] += 1
            copied = {k: src.user_attrs.get(k) for k in (
                "val_accuracy", "history", "history_epochs", "epochs", "latency_ms",
                "weights_artifact", "device", "node_id", "wall_time_s")}
            tell_complete(trial, {**base, **copied, "duplicate_of": src.number}, "duplicate")
            return True
        for k, v in base.items():
            trial.set_user_attr(k, v)
        if fp in inflight_fp:
            waiting_dups.setdefault(fp, []).append(trial)
            return True
        trial.set_user_attr("attempt", attempt)
        job = {"spec": spec.to_dict(), "seed": config.seed * 100003 + trial.number, "train": train,
               "latency": need_latency, "latency_batch": config.latency_batch,
               "board": board, "key": str(trial.number),
               "table": config.benchmark_file if benchmark else None}

        def before(info: dict[str, Any]) -> None:
            if not benchmark:
                for k in ("pid", "node_id"):
                    if info.get(k) is not None:
                        trial.set_user_attr("worker_" + k if k == "pid" else k, info[k])
            if use_ray:  # the RUNNING trial's params and worker are stored before it starts
                storage.flush(trial._trial_id)

        try:
            runner.submit(job, (trial, spec, fp), before)
        except BaseException as exc:  # no worker took it: it must not stay RUNNING
            _fail_quietly(study, trial, "the search was interrupted" if isinstance(exc, KeyboardInterrupt)
                          else f"not started: {exc}")
            raise
        inflight_fp.add(fp)
        return True

    def in_flight() -> int:
        return len(runner.pending) + sum(len(v) for v in waiting_dups.values())

    try:
        while True:
            while runner.slots() and n_complete + in_flight() < target:
                if not launch():
                    break
            if not runner.pending:
                break
            (trial, spec, fp), out = runner.wait()
            inflight_fp.discard(fp)
            dups = waiting_dups.pop(fp, [])
            if out["state"] == "complete":
                blob = out.pop("weights", None)
                aid = _store_weights(store, study, trial, blob) if blob is not None and store else None
                status = "stopped_early" if out.get("stopped_early") else "trained"
                attrs = {k: out.get(k) for k in ("val_accuracy", "history", "history_epochs", "epochs",
                                                 "wall_time_s", "device", "latency_ms", "node_id")}
                attrs["weights_artifact"] = aid
                tell_complete(trial, attrs, status)
                stats["trained" if status == "trained" else "stopped_early"] += 1
                stats["epochs"] += int(out.get("epochs") or 0)
                by_fp[fp] = _Done(trial.number, trial.user_attrs)
                for d in dups:
                    stats["duplicates"] += 1
                    tell_complete(d, {**attrs, "duplicate_of": trial.number}, "duplicate")
                continue
            # failed or died
            trial.set_user_attr("fail_reason", out["reason"])
            study.tell(trial, state=TrialState.FAIL)
            stats["failed"] += 1
            log.warning("trial %d failed: %s", trial.number, out["reason"])
            attempt = int(trial.user_attrs.get("attempt", 0))
            if out["state"] == "died" and attempt < config.max_retries:
                study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number,
                                                              "attempt": attempt + 1})
                stats["retried"] += 1
                log.info("trial %d queued again (attempt %d of %d)", trial.number, attempt + 2,
                         config.max_retries + 1)
            for d in dups:  # the twin failed: those get their own chance
                d_attempt = int(d.user_attrs.get("attempt", 0))
                _fail_quietly(study, d, f"its twin trial {trial.number} failed")
                if out["state"] == "died" and d_attempt < config.max_retries:
                    study.enqueue_trial(d.params, user_attrs={"retry_of": d.number, "attempt": d_attempt + 1})
    except BaseException:
        for trial, *_ in runner.tokens():
            _fail_quietly(study, trial, "the search was interrupted")
        for ds in waiting_dups.values():
            for d in ds:
                _fail_quietly(study, d, "the search was interrupted")
        raise
    finally:
        runner.close()
    return _finish(config, study, t_start, stats)


@dataclass
class _Done:
    """What a duplicate copies from its original trial."""

    number: int
    user_attrs: dict[str, Any]


def _fail_quietly(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    try:
        trial.set_user_attr("fail_reason", reason)
        study.tell(trial, state=TrialState.FAIL)
    except Exception:  # the store itself may be what failed
        pass


def _store_weights(store: FileSystemArtifactStore, study: optuna.Study, trial: optuna.Trial,
                   blob: bytes) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"trial-{trial.number}.safetensors")
        with open(path, "wb") as f:
            f.write(blob)
        return upload_artifact(artifact_store=store, file_path=path, study_or_trial=trial,
                               storage=study._storage, mimetype="application/octet-stream")


def _finish(config: SearchConfig, study: optuna.Study, t_start: float,
            stats: dict[str, Any]) -> SearchResult:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    front = front_trials(study)
    accs = [t.user_attrs.get("val_accuracy") for t in feasible_complete(study)]
    best = max((a for a in accs if a is not None), default=None)
    return SearchResult(
        study_name=study.study_name,
        storage=config.storage,
        completed=len(complete),
        failed=len(failed),
        front=sorted(front, key=lambda t: t.number),
        best_accuracy=best,
        wall_time_s=time.perf_counter() - t_start,
        objectives=tuple(config.objectives),
        stats=stats,
    )


