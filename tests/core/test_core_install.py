"""An editable install and a built wheel import the same hadanas.* names."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = ["hadanas", "hadanas.cli", "hadanas.spaces", "hadanas.spaces.ops", "hadanas.trainers",
           "hadanas.search", "hadanas.dashboards"]
PROBE = (
    "import importlib, json, sys\n"
    "out = {}\n"
    "for m in sys.argv[1:]:\n"
    "    mod = importlib.import_module(m)\n"
    "    out[m] = sorted(getattr(mod, '__all__', []))\n"
    "print(json.dumps(out))\n"
)


def _names(extra_path: str | None) -> dict:
    import json
    import os

    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = extra_path
    proc = subprocess.run([sys.executable, "-c", PROBE, *MODULES], capture_output=True, text=True,
                          env=env, cwd="/", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_wheel_and_editable_install_import_the_same_names(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("hadanas-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    # Nothing generic lands in site-packages: every module lives under hadanas/.
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"hadanas"}, top
    for folder in ("spaces", "trainers", "search", "dashboards"):
        assert f"hadanas/{folder}/__init__.py" in names
    assert "hadanas/py.typed" in names
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from_wheel = _names(str(target))
    editable = _names(None)
    assert from_wheel == editable
    assert "build_model" in editable["hadanas.spaces"] and "run_search" in editable["hadanas.search"]
    # The wheel's modules really came from the wheel, not the working tree.
    proc = subprocess.run([sys.executable, "-c", "import hadanas.spaces as s; print(s.__file__)"],
                          capture_output=True, text=True, env={"PYTHONPATH": str(target)}, cwd="/")
    assert proc.stdout.strip().startswith(str(target))
