"""Every registered op exports to every format with logits within 1e-5 of the original.

Parametrised over ``default_registry`` at collection time (``op_format``, see conftest.py):
one network per op (every knob value; binary ops also as the image-vector fusion),
exported once from memory with ``export_model`` and compared on real digits images.
Known exporter gaps are strict expected failures carrying their reason (``KNOWN_GAPS``).

Set ``HADANAS_EXPORT_TABLE=path.md`` to write the format x op parity table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from hadanas.search._export import TOLERANCE, ExportReport, export_model
from hadanas.spaces import ArchSpec, default_registry

_REPORTS: dict[str, ExportReport] = {}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, digits_batch: torch.Tensor,
             kit: SimpleNamespace) -> Any:
    """``exported(op)``: the op's network exported once (all formats) -> ExportReport."""
    root = tmp_path_factory.mktemp("ops")
    formats = kit.FORMATS if kit.onnx_available() else tuple(f for f in kit.FORMATS if f != "onnx")

    def get(op: str) -> ExportReport:
        if op not in _REPORTS:
            spec = kit.op_spec(default_registry.get(op))
            model = kit.perturbed_model(spec)
            _REPORTS[op] = export_model(model, spec, kit.shapes_of(spec), 10, root / op, formats,
                                        inputs=kit.inputs_for(spec, digits_batch),
                                        inputs_note="32 digits test images")
        return _REPORTS[op]

    return get


@pytest.fixture(scope="module", autouse=True)
def _parity_table(kit: SimpleNamespace) -> Iterator[None]:
    yield
    target = os.environ.get("HADANAS_EXPORT_TABLE")
    if target and _REPORTS:
        Path(target).write_text(_table(_REPORTS, kit), encoding="utf-8")


def _table(reports: dict[str, ExportReport], kit: SimpleNamespace) -> str:
    """Markdown: one row per op, one column per format: the max |diff| or the gap."""
    lines = ["| op | family | knob values | " + " | ".join(kit.FORMATS) + " |",
             "|---|---|---|" + "---|" * len(kit.FORMATS)]
    for op, r in sorted(reports.items()):
        info = default_registry.get(op)
        knobs = "; ".join(",".join(f"{k}={v}" for k, v in c.items())
                          for c in kit.knob_combos(info) if c)
        cells = []
        for fmt in kit.FORMATS:
            if fmt in r.parity:
                cells.append(f"{r.parity[fmt]:.1e}")
            elif fmt in r.failed:
                cells.append("gap: " + r.failed[fmt].split(", used by")[0].split("support ")[-1])
            else:
                cells.append("not run")
        lines.append(f"| {op} | {info.family} | {knobs or '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def test_op_exports_with_parity(exported: Any, op_format: tuple[str, str], kit: SimpleNamespace) -> None:
    op, fmt = op_format
    if fmt == "onnx":
        kit.require(kit.onnx_available(), "onnx and onnxruntime: pip install 'hadanas[onnx]'")
    report = exported(op)
    assert fmt not in report.failed, f"{op}: {fmt} not written: {report.failed.get(fmt)}"
    assert report.parity[fmt] <= TOLERANCE, f"{op}: {fmt} differs by {report.parity[fmt]:.3g}"
    assert report.files[fmt].exists()


def test_known_gap_is_reported_with_the_unsupported_operator(
        exported: Any, known_gap: tuple[str, str], kit: SimpleNamespace) -> None:
    """A gap's export names the unsupported aten op and the module using it, leaves no
    half-written file, and still writes and checks every other format."""
    fmt, op = known_gap
    if fmt == "onnx":
        kit.require(kit.onnx_available(), "onnx and onnxruntime: pip install 'hadanas[onnx]'")
    report = exported(op)
    assert fmt in report.failed and "aten::" in report.failed[fmt], report.failed
    assert " at body." in report.failed[fmt]  # the module's path inside the network
    assert not (report.out / "model.onnx").exists()
    assert set(report.parity) == set(kit.FORMATS) - {fmt}
    assert all(v <= TOLERANCE for v in report.parity.values()) and not report.ok


def test_every_op_is_exercised_with_every_knob_value(kit: SimpleNamespace) -> None:
    """The single-op networks really contain each knob value (the test above relies on it)."""
    for info in default_registry.infos():
        spec = kit.op_spec(info)
        used = ([dict(e.knobs) for n in spec.cell for e in n.edges if e.op == info.name]
                if info.arity == 1 else [dict(n.combine_knobs) for n in spec.cell])
        assert sorted(map(str, used)) == sorted(map(str, kit.knob_combos(info))), info.name
        if info.arity == 2:
            assert spec.input_fusion == info.name and spec.inputs == ("image", "vector")


def test_exporting_again_into_a_directory_leaves_no_stale_format(tmp_path: Path,
                                                                 kit: SimpleNamespace) -> None:
    spec = kit.op_spec(default_registry.get("conv_3x3"))
    first = export_model(kit.perturbed_model(spec, seed=1), spec, kit.shapes_of(spec), 10,
                         tmp_path, ["torchscript", "code"])
    assert (tmp_path / "model.pt").exists() and first.ok
    (tmp_path / "notes.txt").write_text("mine")
    second = export_model(kit.perturbed_model(spec, seed=2), spec, kit.shapes_of(spec), 10,
                          tmp_path, ["code"])
    assert second.ok and not (tmp_path / "model.pt").exists()  # it held the seed-1 weights
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert "model.pt" not in json.loads((tmp_path / "hadanas.json").read_text())["files"].values()


# --- head fusion: the vector fused with the pooled features before the classifier ----------

@pytest.mark.parametrize("op", [i.name for i in default_registry.infos() if i.arity == 2])
def test_head_fusion_exports_with_parity(op: str, tmp_path: Path, digits_batch: torch.Tensor,
                                         kit: SimpleNamespace) -> None:
    """Each binary op (every knob value as a cell combine) as the head fusion of an
    image-vector network: every format written, logits within 1e-5, on real digits images."""
    data = kit.op_spec(default_registry.get(op)).to_dict()
    spec = ArchSpec.from_dict({**data, "fusion_point": "head"})
    assert spec.fusion_point == "head" and spec.input_fusion == op
    formats = kit.FORMATS if kit.onnx_available() else tuple(f for f in kit.FORMATS if f != "onnx")
    model = kit.perturbed_model(spec)
    assert model.classifier is not None
    report = export_model(model, spec, kit.shapes_of(spec), 10, tmp_path / op, formats,
                          inputs=kit.inputs_for(spec, digits_batch), inputs_note="32 digits test images")
    assert not report.failed, report.failed
    assert set(report.parity) == set(formats)
    assert all(v <= TOLERANCE for v in report.parity.values()), report.parity
    assert '"fusion_point":"head"' in (tmp_path / op / "model.py").read_text()
    if "onnx" not in formats:
        kit.require(False, "onnx and onnxruntime: pip install 'hadanas[onnx]'")
