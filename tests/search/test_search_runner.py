"""The search runner against a real Ray runtime and real SQLite stores."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import torch
import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.trial import TrialState
from safetensors.torch import load_file

from hadanas.config import SearchConfig
from hadanas.search import front_trials, load_study, open_storage, pareto_mask, run_search, to_minimization
from hadanas.spaces import ArchSpec, SearchSpace, build_model, count_flops, count_params


def _study(info: dict) -> optuna.Study:
    return load_study(open_storage(info["storage"]), info["study"])


def test_tiny_search_records_every_trial(tiny_search: dict) -> None:
    study = _study(tiny_search)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 6
    assert study.user_attrs["objectives"] == ["accuracy", "flops"]
    assert study.user_attrs["space"] == "full" and study.user_attrs["dataset"] == "digits"
    assert study.user_attrs["input_shapes"] == [[1, 8, 8]] and study.user_attrs["num_classes"] == 10
    for t in complete:
        a = t.user_attrs
        spec = ArchSpec.from_dict(a["spec"])
        assert spec.fingerprint() == a["fingerprint"]
        assert 0.0 <= t.values[0] <= 1.0 and t.values[0] == a["val_accuracy"]
        model = build_model(spec, [(1, 8, 8)], 10)
        # The stored costs are the cost model's, recomputed here independently.
        assert a["params"] == count_params(model)
        assert t.values[1] == a["flops"] == count_flops(model, [(1, 8, 8)])
        assert a["epochs"] == 1 and len(a["history"]) == 1
        assert a["status"] == "trained"
        assert a["node_id"]


def test_trained_weights_are_stored_and_reproduce_accuracy(tiny_search: dict, tmp_path: Path) -> None:
    from hadanas.trainers import evaluate, load_dataset

    study = _study(tiny_search)
    t = max(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.values[0])
    store = FileSystemArtifactStore(study.user_attrs["artifact_dir"])
    path = tmp_path / "w.safetensors"
    download_artifact(artifact_store=store, file_path=str(path), artifact_id=t.user_attrs["weights_artifact"])
    model = build_model(ArchSpec.from_dict(t.user_attrs["spec"]), [(1, 8, 8)], 10)
    model.load_state_dict(load_file(str(path)))
    acc = evaluate(model, load_dataset("digits"), "val")
    assert acc == pytest.approx(t.values[0], abs=1e-9)


def test_front_is_non_dominated(tiny_search: dict) -> None:
    study = _study(tiny_search)
    front = front_trials(study)
    assert front
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    vals = to_minimization(np.array([t.values for t in complete]), ["maximize", "minimize"])
    mask = pareto_mask(vals)
    assert sorted(t.number for t in front) == sorted(t.number for t, m in zip(complete, mask) if m)
    for f in front:
        for t in complete:
            assert not (t.values[0] > f.values[0] and t.values[1] < f.values[1])


def _tiny_space() -> SearchSpace:
    # 2 widths x 3 ops = 6 architectures: small enough to force duplicates.
    return SearchSpace(name="tiny", edge_ops=("skip", "conv_1x1", "avg_pool_3x3"), widths=(4, 8),
                       n_nodes=1, edges_per_node=1)


def test_duplicates_constraints_and_resume(ray_session: None, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    base = SearchConfig(trials=10, epochs=1, storage=url, out=str(tmp_path), sampler="random",
                        seed=3, max_concurrent=2, study="dups")
    result = run_search(base, space=_tiny_space(), keep_workers=True)
    study = load_study(open_storage(url), "dups")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert result.completed == len(complete) == 10
    statuses = [t.user_attrs["status"] for t in complete]
    trained = [t for t in complete if t.user_attrs["status"] == "trained"]
    # At most 6 distinct architectures exist, so at least 4 answers came from the store.
    assert len(trained) <= 6 and statuses.count("duplicate") == 10 - len(trained)
    fps = [t.user_attrs["fingerprint"] for t in trained]
    assert len(fps) == len(set(fps)), "an architecture was trained twice"
    for t in complete:
        if t.user_attrs["status"] == "duplicate":
            src = study.trials[t.user_attrs["duplicate_of"]]
            assert src.user_attrs["fingerprint"] == t.user_attrs["fingerprint"]
            assert src.values == t.values
    # The front lists each architecture once, as the trial that trained it.
    front = front_trials(study)
    assert front and len({t.user_attrs["fingerprint"] for t in front}) == len(front)
    assert all(t.user_attrs["status"] == "trained" for t in front)

    # Resume with a larger budget: nothing completed is re-run, numbering continues.
    result2 = run_search(base.replace(trials=13, resume=True, study=None), space=_tiny_space(), keep_workers=True)
    study = load_study(open_storage(url), "dups")
    after = study.get_trials(states=(TrialState.COMPLETE,))
    assert result2.completed == 13
    assert [t.number for t in after[:10]] == [t.number for t in complete]
    assert [t.values for t in after[:10]] == [t.values for t in complete]
    assert result2.stats["trained"] + result2.stats["duplicates"] == 3

    # A constraint no spec satisfies: everything is recorded infeasible, nothing trained.
    cfg = base.replace(study="constrained", trials=3, max_params=10)
    r3 = run_search(cfg, space=_tiny_space(), keep_workers=True)
    study = load_study(open_storage(url), "constrained")
    ts = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(ts) == 3 and r3.stats["trained"] == 0
    for t in ts:
        assert t.user_attrs["status"] == "infeasible" and t.user_attrs["epochs"] == 0
        assert t.user_attrs["constraints"][0] == t.user_attrs["params"] - 10 > 0
        assert t.constraints == {"0": t.user_attrs["constraints"][0]}  # what Optuna's samplers read
    assert front_trials(study) == []


def test_constrained_samplers_use_the_trials_constraints_without_warnings() -> None:
    import warnings

    from hadanas.search import make_sampler

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna 5 deprecates constraints_func
        for name in ("auto", "nsga2", "tpe", "local", "random"):
            make_sampler(SearchConfig(max_flops=1e6, sampler=name))


def test_study_objective_mismatch_is_refused(tiny_search: dict) -> None:
    from hadanas.exceptions import ConfigError

    cfg = SearchConfig(storage=tiny_search["storage"], study=tiny_search["study"],
                       objectives=("accuracy", "params"), trials=7)
    with pytest.raises(ConfigError, match="optimises accuracy,flops"):
        run_search(cfg)
    assert len(_study(tiny_search).trials) == 6  # nothing written


def test_values_are_finite(tiny_search: dict) -> None:
    for t in _study(tiny_search).get_trials(states=(TrialState.COMPLETE,)):
        assert all(math.isfinite(v) for v in t.values)


def test_user_registered_op_reaches_the_ray_workers(ray_session: None, tmp_path: Path) -> None:
    from hadanas.spaces import default_registry, register_op

    # Defined in the function, as in a user's script: it travels to the workers by value.
    class _Halve(torch.nn.Module):
        def __init__(self, stride: int) -> None:
            super().__init__()
            self.pool = (torch.nn.AvgPool2d(3, stride, 1, count_include_pad=False)
                         if stride > 1 else torch.nn.Identity())
            self.scale = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pool(x) * self.scale

    @register_op("test_halve", family="gating")
    def test_halve(C: int, stride: int = 1) -> torch.nn.Module:
        return _Halve(stride)

    try:
        space = SearchSpace(name="user", edge_ops=("test_halve",), widths=(4,), n_nodes=1, edges_per_node=1)
        cfg = SearchConfig(trials=1, epochs=1, storage=f"sqlite:///{tmp_path / 'u.db'}", out=str(tmp_path))
        r = run_search(cfg, space=space, keep_workers=True)
        assert r.completed == 1 and r.failed == 0
        assert r.front[0].user_attrs["spec"]["cell"][0]["edges"][0]["op"] == "test_halve"
    finally:
        default_registry.unregister("test_halve")


def _write_op_module(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(body))


def test_op_module_only_the_driver_can_import_reaches_the_workers(ray_session: None,
                                                                  tmp_path: Path) -> None:
    """``import my_ops`` from the user's own folder: the workers get the module by value."""
    import importlib
    import sys

    from hadanas.spaces import default_registry

    _write_op_module(tmp_path / "driver_only", "userdir_local_ops", """
        import torch
        from hadanas.spaces import register_op

        class Scale(torch.nn.Module):
            def __init__(self, stride):
                super().__init__()
                self.pool = torch.nn.AvgPool2d(3, stride, 1) if stride > 1 else torch.nn.Identity()
                self.w = torch.nn.Parameter(torch.tensor(0.5))

            def forward(self, x):
                return self.pool(x) * self.w

        @register_op("test_local_scale", family="gating")
        def local_scale(C, stride=1):
            return Scale(stride)
    """)
    sys.path.insert(0, str(tmp_path / "driver_only"))
    try:
        importlib.import_module("userdir_local_ops")
        space = SearchSpace(name="local", edge_ops=("test_local_scale",), widths=(4,), n_nodes=1,
                            edges_per_node=1)
        cfg = SearchConfig(trials=1, epochs=1, storage=f"sqlite:///{tmp_path / 'l.db'}", out=str(tmp_path))
        r = run_search(cfg, space=space, keep_workers=True)
        assert r.completed == 1 and r.failed == 0
    finally:
        sys.path.remove(str(tmp_path / "driver_only"))
        sys.modules.pop("userdir_local_ops", None)
        default_registry.unregister("test_local_scale")


def test_workers_that_cannot_start_give_one_clear_error(ray_session: None, tmp_path: Path) -> None:
    """An op whose module needs a helper only the driver can import: every worker would die
    at start. The search stops with one error naming the cause; no trial is left RUNNING."""
    import importlib
    import sys

    from hadanas.exceptions import ConfigError
    from hadanas.spaces import default_registry

    folder = tmp_path / "driver_only2"
    _write_op_module(folder, "userdir_private_helper", """
        import torch
        FACTOR = 0.5
    """)
    _write_op_module(folder, "userdir_needs_helper", """
        import torch
        import userdir_private_helper as helper
        from hadanas.spaces import register_op

        @register_op("test_needs_helper", family="gating")
        def needs_helper(C, stride=1):
            return torch.nn.AvgPool2d(3, stride, 1) if stride > 1 else torch.nn.Identity()

        needs_helper.helper = helper
    """)
    sys.path.insert(0, str(folder))
    # the helper module travels by reference (only the op's own module is sent by value)
    storage = f"sqlite:///{tmp_path / 'h.db'}"
    try:
        importlib.import_module("userdir_needs_helper")
        space = SearchSpace(name="helper", edge_ops=("test_needs_helper",), widths=(4,), n_nodes=1,
                            edges_per_node=1)
        cfg = SearchConfig(trials=2, epochs=1, storage=storage, out=str(tmp_path), study="h")
        with pytest.raises(ConfigError, match="workers cannot start.*userdir_private_helper"):
            run_search(cfg, space=space)
    finally:
        sys.path.remove(str(folder))
        for m in ("userdir_needs_helper", "userdir_private_helper"):
            sys.modules.pop(m, None)
        default_registry.unregister("test_needs_helper")
    trials = optuna.load_study(study_name="h", storage=open_storage(storage)).trials
    assert not any(t.state == TrialState.RUNNING for t in trials)
