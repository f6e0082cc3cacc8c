"""Export a stored trial: spec JSON, safetensors weights, TorchScript, with a parity check.

Nothing here pickles: weights are safetensors, the spec is JSON, and the TorchScript
archive is loaded with ``torch.jit.load`` (no pickle of Python objects).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.trial import TrialState
from safetensors.torch import load_file, save_file

from hadanas.exceptions import ConfigError, StoreError
from hadanas.spaces import ArchSpec, HadaNet, build_model

__all__ = ["ExportReport", "export_trial", "load", "FORMATS"]

FORMATS = ("spec", "safetensors", "torchscript")
_META = "hadanas.json"


@dataclass
class ExportReport:
    out: Path
    files: dict[str, Path]
    parity: dict[str, float] = field(default_factory=dict)  # format -> max abs difference
    tolerance: float = 1e-5

    @property
    def ok(self) -> bool:
        return all(v <= self.tolerance for v in self.parity.values())


def _trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    if number < 0 or number >= len(study.trials):
        raise StoreError(
            f"study '{study.study_name}' has no trial {number} (trials are 0..{len(study.trials) - 1})."
        )
    t = study.trials[number]
    if t.state != TrialState.COMPLETE:
        reason = t.user_attrs.get("fail_reason")
        raise StoreError(
            f"trial {number} is {t.state.name}, not COMPLETE" + (f" ({reason})" if reason else "")
            + "; pick a completed trial from 'hadanas pareto'."
        )
    if t.user_attrs.get("status") == "infeasible":
        raise StoreError(f"trial {number} is infeasible (over a constraint) and was never trained.")
    return t


def _weights(study: optuna.Study, t: optuna.trial.FrozenTrial) -> dict[str, torch.Tensor]:
    aid = t.user_attrs.get("weights_artifact")
    art = study.user_attrs.get("artifact_dir")
    if not aid or not art:
        raise StoreError(f"trial {t.number} has no stored weights.")
    if not Path(art).exists():
        raise StoreError(
            f"the weights of trial {t.number} live in '{art}', which does not exist on this machine."
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.safetensors")
        try:
            download_artifact(artifact_store=FileSystemArtifactStore(art), file_path=path, artifact_id=aid)
        except Exception as exc:
            raise StoreError(f"cannot read the weights of trial {t.number} from '{art}': {exc}") from None
        return load_file(path)


def _example_inputs(shapes: list[list[int]], batch: int = 8) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(batch, *s, generator=gen) for s in shapes]


def export_trial(
    study: optuna.Study,
    number: int,
    out: str | Path,
    formats: tuple[str, ...] = FORMATS,
    inputs: list[torch.Tensor] | None = None,
) -> ExportReport:
    """Write the trial's artifacts to ``out`` and check each format against the original."""
    for f in formats:
        if f not in FORMATS:
            raise ConfigError(f"unknown export format '{f}'; valid formats: {', '.join(FORMATS)}.")
    t = _trial(study, number)
    shapes = study.user_attrs.get("input_shapes")
    num_classes = study.user_attrs.get("num_classes")
    if not shapes or not num_classes:
        raise StoreError(f"study '{study.study_name}' does not record input shapes; was it made by hadanas?")
    spec = ArchSpec.from_dict(t.user_attrs["spec"])
    model = build_model(spec, shapes, int(num_classes))
    model.load_state_dict(_weights(study, t))
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    meta = {"input_shapes": shapes, "num_classes": int(num_classes), "trial": t.number,
            "study": study.study_name, "values": dict(zip(study.user_attrs.get("objectives", []), t.values)),
            "dataset": study.user_attrs.get("dataset")}
    (out / _META).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    files["meta"] = out / _META
    (out / "spec.json").write_text(spec.to_json(indent=2) + "\n", encoding="utf-8")
    files["spec"] = out / "spec.json"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "weights.safetensors"))
    files["safetensors"] = out / "weights.safetensors"
    xs = inputs if inputs is not None else _example_inputs(shapes)
    report = ExportReport(out, files)
    with torch.no_grad():
        ref = model(*xs)
        reloaded = load(out)
        report.parity["safetensors"] = float((reloaded(*xs) - ref).abs().max())
        if "torchscript" in formats:
            traced = torch.jit.trace(model, tuple(xs), check_trace=False)
            traced.save(str(out / "model.pt"))
            files["torchscript"] = out / "model.pt"
            back = torch.jit.load(str(out / "model.pt"))
            report.parity["torchscript"] = float((back(*xs) - ref).abs().max())
    return report


def load(directory: str | Path) -> HadaNet:
    """Rebuild an exported model from ``spec.json`` + ``weights.safetensors`` (no pickle)."""
    d = Path(directory)
    try:
        meta: dict[str, Any] = json.loads((d / _META).read_text(encoding="utf-8"))
        spec = ArchSpec.from_json((d / "spec.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StoreError(f"'{d}' is not a hadanas export: {Path(exc.filename).name} is missing.") from None
    model = build_model(spec, meta["input_shapes"], int(meta["num_classes"]))
    model.load_state_dict(load_file(str(d / "weights.safetensors")))
    return model.eval()
