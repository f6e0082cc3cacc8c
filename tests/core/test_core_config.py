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
    assert (c.space, c.dataset, c.objectives, c.sampler) == ("full", "digits", ("accuracy", "flops"), "nsga2")
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
