"""No pickle anywhere: the package never imports a pickle module, never calls ``torch.save``,
calls ``torch.load`` only with ``weights_only=True`` and ``np.load`` only without
``allow_pickle=True``; and loading an export works with every pickle entry point disabled."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import hadanas
from hadanas.search._export import export_model
from hadanas.spaces import default_registry

PACKAGE_DIRS = ("hadanas", "spaces", "trainers", "search", "dashboards")
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def pickle_uses(source: str) -> list[str]:
    """Each pickle use in ``source``: (line) what."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES:
            found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name == "torch.save":
                found.append(f"{node.lineno}: torch.save")
            elif name == "torch.load":
                w = _kw(node, "weights_only")
                if not (isinstance(w, ast.Constant) and w.value is True):
                    found.append(f"{node.lineno}: torch.load without weights_only=True")
            elif name in ("np.load", "numpy.load"):
                a = _kw(node, "allow_pickle")
                if a is not None and not (isinstance(a, ast.Constant) and a.value is False):
                    found.append(f"{node.lineno}: np.load with allow_pickle")
    return found


def test_the_scanner_finds_what_it_looks_for() -> None:
    bad = ("import pickle\nfrom cloudpickle import dumps\nimport torch, numpy as np\n"
           "torch.save({}, 'x')\ntorch.load('x')\ntorch.load('x', weights_only=False)\n"
           "np.load('x', allow_pickle=True)\n")
    assert pickle_uses(bad) == ["1: import pickle", "2: from cloudpickle import ...", "4: torch.save",
                                "5: torch.load without weights_only=True",
                                "6: torch.load without weights_only=True", "7: np.load with allow_pickle"]
    good = "import torch, numpy as np\ntorch.load('x', weights_only=True)\nnp.load('x', allow_pickle=False)\n"
    assert pickle_uses(good) == []


def test_the_package_never_pickles(repo: Path) -> None:
    files = [p for d in PACKAGE_DIRS for p in sorted((repo / d).rglob("*.py"))]
    assert len(files) > 20
    uses = {str(p.relative_to(repo)): u for p in files if (u := pickle_uses(p.read_text("utf-8")))}
    assert uses == {}


def test_load_needs_no_pickle(tmp_path: Path, kit: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = kit.op_spec(default_registry.get("mhsa"))
    model = kit.perturbed_model(spec)
    export_model(model, spec, kit.shapes_of(spec), 10, tmp_path / "e", ["code"])

    def forbidden(*a: object, **k: object) -> None:
        raise AssertionError("pickle was used")

    for target, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"),
                         (torch, "load")):
        monkeypatch.setattr(target, name, forbidden)
    net = hadanas.load(tmp_path / "e")
    x = torch.randn(3, *kit.IMAGE)
    with torch.no_grad():
        assert torch.equal(net(x), model(x))
