"""model.py generation: every op in one file, ops registered outside hadanas, and the ops
whose source cannot be copied (named in the error, never silently wrong)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from hadanas.search._codegen import ExportGap, generate_code, load_generated
from hadanas.search._export import export_model
from hadanas.spaces import ArchSpec, OpRegistry, build_model, default_registry, list_ops


def _every_op_spec() -> ArchSpec:
    """One cell using every unary op on an edge and every binary op as a combine, plus the
    image-vector fusion: all op modules end up in one generated namespace."""
    unary, binary = list_ops(arity=1), list_ops(arity=2)
    cell = []
    for k in range(max((len(unary) + 1) // 2, len(binary))):
        edges = [{"src": k, "op": unary[(2 * k) % len(unary)]},
                 {"src": 0, "op": unary[(2 * k + 1) % len(unary)]}]
        cell.append({"combine": binary[k % len(binary)], "edges": edges})
    return ArchSpec.from_dict({"stages": [8], "cell": cell, "inputs": ["image", "vector"],
                               "input_fusion": binary[-1]})


def _roundtrip(spec: ArchSpec, model: nn.Module, shapes: list, tmp: Path,
               registry: OpRegistry | None = None) -> tuple[str, float]:
    src = generate_code(spec, shapes, 10, registry=registry)
    (tmp / "model.py").write_text(src)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "w.safetensors"))
    module = load_generated(tmp / "model.py", f"gen_{tmp.name}")
    net = module.build(str(tmp / "w.safetensors"))  # strict=True inside
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(4, *s, generator=gen) for s in shapes]
    with torch.no_grad():
        return src, float((net(*xs) - model(*xs)).abs().max())


def test_every_op_in_one_file_rebuilds_the_exact_module(tmp_path: Path, kit: SimpleNamespace) -> None:
    spec = _every_op_spec()
    assert set(spec.ops()) == set(list_ops())
    shapes = [kit.IMAGE, kit.VECTOR]
    model = kit.perturbed_model(spec)
    src, diff = _roundtrip(spec, model, shapes, tmp_path)
    assert diff == 0.0
    tree = ast.parse(src)
    defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert len(defined) == len(set(defined))  # no name defined twice
    for info in default_registry.infos():
        assert f'"{info.name}": ({info.factory.__name__}, ' in src
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m.split(".")[0] == "hadanas" for m in imported), imported
    assert "@register_op" not in src


def test_only_the_ops_a_spec_uses_are_copied(tmp_path: Path, kit: SimpleNamespace) -> None:
    spec = ArchSpec.from_dict({"stages": [8], "cell": [{"edges": [{"src": 0, "op": "conv_3x3"}]}]})
    src, diff = _roundtrip(spec, build_model(spec, [kit.IMAGE], 10).eval(), [kit.IMAGE], tmp_path)
    assert diff == 0.0
    assert "class HyenaMixer" not in src and "class MHSA" not in src and "def conv_3x3" in src
    assert "import math" not in src  # only pairwise.py needs math


# --- ops registered outside hadanas ------------------------------------------------------

OFFSET = 0.5  # a module-level constant the op reads: copied along with it


class Shift(nn.Module):
    """A user op: a learned per-channel shift plus a constant."""

    def __init__(self, C: int) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.linspace(-1, 1, C).view(1, C, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b + OFFSET


def shift(C: int, stride: int = 1) -> nn.Module:
    return Shift(C)


class NumpyOp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float(np.sqrt(2.0))


def numpy_op(C: int, stride: int = 1) -> nn.Module:
    return NumpyOp()


def _registry() -> OpRegistry:
    reg = OpRegistry()
    for info in default_registry.infos():  # keep the builder's combine ops
        if info.arity == 2:
            reg.register(info.name, family=info.family, arity=2, knobs=info.knobs)(info.factory)
    reg.register("shift", family="conventional")(shift)
    reg.register("numpy_op", family="conventional")(numpy_op)
    reg.register("lambda_op", family="conventional")(lambda C, stride=1: nn.Identity())
    return reg


def _spec(op: str, reg: OpRegistry) -> ArchSpec:
    return ArchSpec.from_dict({"stages": [8], "cell": [{"edges": [{"src": 0, "op": op}]}]}, reg)


def test_an_op_registered_in_user_code_is_copied_with_what_it_reads(tmp_path: Path,
                                                                    kit: SimpleNamespace) -> None:
    reg = _registry()
    spec = _spec("shift", reg)
    model = build_model(spec, [kit.IMAGE], 10, registry=reg).eval()
    src, diff = _roundtrip(spec, model, [kit.IMAGE], tmp_path, registry=reg)
    assert diff == 0.0
    assert "class Shift(nn.Module):" in src and "OFFSET = 0.5" in src
    assert f"# --- from {__name__} " in src


@pytest.mark.parametrize(("op", "reason"), [
    ("lambda_op", "op 'lambda_op' is registered with factory '_registry.<locals>.<lambda>', which "
                  "is not a top-level function or class of a module, so model.py cannot copy its source."),
    ("numpy_op", "imports 'numpy', but model.py may depend on torch and the standard library only"),
])
def test_an_op_that_cannot_be_copied_is_named_in_the_gap(tmp_path: Path, kit: SimpleNamespace,
                                                         op: str, reason: str) -> None:
    reg = _registry()
    spec = _spec(op, reg)
    with pytest.raises(ExportGap, match=re.escape(reason)):
        generate_code(spec, [kit.IMAGE], 10, registry=reg)


def test_export_model_reports_a_code_gap_and_writes_the_rest(tmp_path: Path, kit: SimpleNamespace,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``export_model`` builds ``load``-able files from the default registry; an op it cannot
    copy leaves ``model.py`` out with the reason while the other formats are written."""
    spec = kit.op_spec(default_registry.get("conv_1x1"))
    model = kit.perturbed_model(spec)
    from hadanas.search import _export

    def refuse(*a: object, **k: object) -> str:
        raise ExportGap("op 'x' is registered with factory <lambda>")

    monkeypatch.setattr(_export, "generate_code", refuse)
    report = export_model(model, spec, kit.shapes_of(spec), 10, tmp_path / "e", ["torchscript", "code"])
    assert report.failed == {"code": "op 'x' is registered with factory <lambda>"}
    assert not (tmp_path / "e" / "model.py").exists() and (tmp_path / "e" / "model.pt").exists()
    assert "| code | not written | - | op 'x' is registered" in (tmp_path / "e" / "MODEL_CARD.md").read_text()
