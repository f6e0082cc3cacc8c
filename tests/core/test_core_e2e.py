"""End to end through the installed command: search, pareto, dashboard, export."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def hadanas(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hadanas", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


@pytest.mark.slow
def test_search_pareto_dashboard_export(tmp_path: Path) -> None:
    run = hadanas("search", "--trials", "5", "--epochs", "1", "--study", "e2e", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "hadanas.db").exists()
    report = tmp_path / "hadanas-out" / "report.html"
    html = report.read_text()
    # Self-contained: plotly.js is inlined, nothing is fetched from the network.
    assert not re.search(r"<script[^>]+src=[\"']https?://", html) and "Plotly" in html
    assert "[5/5]" in run.stderr and "Pareto front of study 'e2e'" in run.stdout

    pareto = hadanas("pareto", "--json", cwd=tmp_path)
    assert pareto.returncode == 0, pareto.stderr
    data = json.loads(pareto.stdout)
    assert data["study"] == "e2e" and data["objectives"] == ["accuracy", "flops"]
    front = data["front"]
    assert 1 <= len(front) <= 5
    for a in front:
        acc, flops = a["values"]["accuracy"], a["values"]["flops"]
        assert 0.0 <= acc <= 1.0 and flops == a["flops"] > 10_000
        for b in front:  # non-dominated
            assert not (b["values"]["accuracy"] > acc and b["values"]["flops"] < flops)

    dash = hadanas("dashboard", "--out", "d.html", cwd=tmp_path)
    assert dash.returncode == 0 and (tmp_path / "d.html").stat().st_size > 100_000

    best = max(front, key=lambda a: a["values"]["accuracy"])
    out = tmp_path / "export"
    exp = hadanas("export", "--trial", str(best["trial"]), "--out", str(out), cwd=tmp_path)
    assert exp.returncode == 0, exp.stderr
    assert "FAILED" not in exp.stdout
    spec = json.loads((out / "spec.json").read_text())
    assert spec == best["spec"]
    import hadanas as hn
    from hadanas.trainers import load_dataset

    model = hn.load(out)
    scripted = torch.jit.load(str(out / "model.pt"))
    x = load_dataset("digits").inputs["test"][0][:32]
    with torch.no_grad():
        assert torch.allclose(model(x), scripted(x), atol=1e-5)
        acc = (model(load_dataset("digits").inputs["val"][0]).argmax(1)
               == load_dataset("digits").labels["val"]).float().mean().item()
    assert acc == pytest.approx(best["values"]["accuracy"], abs=1e-6)

    # Errors: a trial that does not exist, a study that does not exist.
    bad = hadanas("export", "--trial", "99", "--out", "x", cwd=tmp_path)
    assert bad.returncode == 2 and "has no trial 99" in bad.stderr
    bad = hadanas("pareto", "--study", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and "no study named 'nope'" in bad.stderr
