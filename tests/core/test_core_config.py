"""SearchConfig validation, YAML loading and the CLI's one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hadanas.config import SearchConfig, load_yaml_config
from hadanas.exceptions import ConfigError


def test_defaults_are_the_documented_main_job() -> None:
    c = SearchConfig()
    assert (c.space, c.dataset, c.objectives, c.sampler) == ("full", "digits", ("accuracy", "flops"), "auto")
    assert c.directions == ["maximize", "minimize"]
    assert c.storage == "sqlite:///hadanas.db"


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"trials": 0}, "'trials' must be an integer"),
        ({"trials": "10"}, "'trials' must be an integer"),
        ({"trials": True}, "'trials' must be an integer"),
        ({"objectives": "accuracy,flop"}, "Did you mean 'flops'"),
        ({"objectives": ""}, "'objectives' needs at least one"),
        ({"objectives": "accuracy,accuracy"}, "twice"),
        ({"sampler": "nsga"}, "Did you mean 'nsga2'"),
        ({"gpus_per_trial": 1.5}, "whole number"),
        ({"cpus_per_trial": 0, "gpus_per_trial": 0}, "needs some resources"),
        ({"max_flops": -1}, "'max_flops' must be a positive finite number"),
        ({"storage": "hadanas.db"}, "database URL"),
        ({"subset": 3}, "'subset' must be an integer >= 30"),
        ({"precision": "fp8"}, "'precision' must be one of"),
    ],
)
def test_bad_values_name_the_field(changes: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        SearchConfig().replace(**changes)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_yaml_config(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("trials: 7\nobjectives: [accuracy, params]\nmax-concurrent: 1\n")
    c = load_yaml_config(f)
    assert (c.trials, c.objectives, c.max_concurrent) == (7, ("accuracy", "params"), 1)
    f.write_text("trails: 7\n")
    with pytest.raises(ConfigError, match="unknown key 'trails'.*Did you mean 'trials'"):
        load_yaml_config(f)
    f.write_text("trials: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml_config(f)
    f.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_yaml_config(f)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["search", "--trials", "abc"], "invalid int value"),
        (["search", "--objectives", "accuracy,speed"], "unknown objective 'speed'"),
        (["search", "--space", "ful"], "unknown space 'ful'"),
        (["search", "--dataset", "digitz"], "unknown dataset 'digitz'"),
        (["pareto", "--storage", "sqlite:///{tmp}/none.db"], "no study store"),
        (["export", "--out", "x"], "--trial"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_cli_errors_are_one_line_with_exit_2(argv: list[str], fragment: str, tmp_path: Path) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "hadanas", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "hadanas.db").exists() or argv[0] != "pareto"


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"cpus_per_trial": float("nan")}, "finite"),
        ({"max_flops": float("inf")}, "finite"),
        ({"storage": "sqlite://"}, "in-memory"),
        ({"storage": "sqlite:///:memory:"}, "in-memory"),
        ({"study": ""}, "non-empty"),
        ({"space": ["full"]}, "non-empty string"),
        ({"objectives": 5}, "comma-separated"),
        ({"resume": "no"}, "true or false"),
    ],
)
def test_more_bad_values(changes: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        SearchConfig().replace(**changes)
    assert fragment in str(info.value)


def test_passwords_are_masked_in_every_url_form() -> None:
    from hadanas.search import mask_url

    assert "secret" not in mask_url("postgresql+psycopg://u:secret@h/x")
    assert "secret" not in mask_url("postgresql+psycopg://:secret@h/x")
    assert "secret" not in mask_url("postgresql+psycopg://h/x?user=u&password=secret&sslmode=require")
    assert mask_url("postgresql+psycopg://h/x?password=secret&sslmode=require").endswith("password=***&sslmode=require")


def test_unwritable_out_fails_before_the_search(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "hadanas", "search", "--out", "/proc/x"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "--out '/proc/x' cannot be created" in proc.stderr
    assert not (tmp_path / "hadanas.db").exists()


# --- trainer settings: devices, strategy, weight decay, precision auto --------------------


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"devices": 0}, "'devices' must be a count in 1..1024, -1 (all the trial's devices) or 'auto'"),
        ({"devices": "two"}, "'devices' must be a count"),
        ({"devices": True}, "'devices' must be a count"),
        ({"devices": 2.0}, "'devices' must be a count"),
        ({"devices": 2, "gpus_per_trial": 1}, "'devices' 2 needs gpus_per_trial >= 2"),
        ({"strategy": "dpp"}, "'strategy' must be one of auto, ddp"),
        ({"strategy": "dpp"}, "Did you mean 'ddp'"),
        ({"strategy": ""}, "'strategy' must be one of"),
        ({"weight_decay": -0.1}, "'weight_decay' must be a number in [0, 10)"),
        ({"weight_decay": float("nan")}, "'weight_decay' must be a number"),
        ({"weight_decay": "0.1"}, "'weight_decay' must be a number"),
        ({"precision": "bf16"}, "'precision' must be one of 32-true, 32, bf16-mixed, 16-mixed, 64-true, auto"),
    ],
)
def test_bad_trainer_settings_name_the_field(changes: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        SearchConfig().replace(**changes)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_trainer_settings_reach_the_train_config() -> None:
    from hadanas.trainers import TrainConfig, resolve_precision

    c = SearchConfig()
    assert (c.devices, c.strategy, c.weight_decay, c.precision) == (1, "auto", 1e-4, "32-true")
    c = SearchConfig(devices="2", strategy="ddp", weight_decay=0.05, precision="auto")
    assert c.devices == 2  # a count given as text (YAML, CLI) becomes an integer
    train = TrainConfig(**c.train_settings())
    assert (train.devices, train.weight_decay, train.precision) == (2, 0.05, "auto")
    assert train.strategy == "ddp_spawn"  # 'ddp' relaunches the script, which a Ray actor cannot
    assert train.accelerator == "cpu" and resolve_precision(train) == "32-true"
    gpu = SearchConfig(gpus_per_trial=2, devices=2, strategy="ddp_spawn").train_settings()
    assert (gpu["accelerator"], gpu["devices"], gpu["strategy"]) == ("gpu", 2, "ddp_spawn")
    assert SearchConfig(devices="auto").devices == "auto" and SearchConfig(devices=-1).devices == -1


def test_trainer_settings_from_yaml_and_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("devices: 2\nstrategy: ddp_spawn\nweight-decay: 0.0\nprecision: auto\n")
    c = load_yaml_config(f)
    assert (c.devices, c.strategy, c.weight_decay, c.precision) == (2, "ddp_spawn", 0.0, "auto")
    from hadanas.cli import _build

    args = _build().parse_args(["search", "--devices", "auto", "--strategy", "ddp",
                                "--weight-decay", "1e-3", "--precision", "auto"])
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "quiet") and v is not None}
    c = SearchConfig.from_mapping(flags, source="command line")
    assert (c.devices, c.strategy, c.weight_decay, c.precision) == ("auto", "ddp", 1e-3, "auto")


def test_dataset_help_lists_the_built_in_datasets() -> None:
    proc = subprocess.run([sys.executable, "-m", "hadanas", "search", "--help"], capture_output=True,
                          text=True, timeout=120)
    text = " ".join(proc.stdout.split())
    for name in ("digits", "fashion-mnist", "mfeat (", "mfeat-pix", "folder:PATH", "npz:PATH"):
        assert name in text, name
    for flag in ("--devices", "--strategy", "--weight-decay"):
        assert flag in text
