"""Export: from a trial on the front (or any built network) to deployable, verified files.

One export directory holds

* ``spec.json`` -- the :class:`ArchSpec`; ``weights.safetensors`` -- the state dict;
  ``hadanas.json`` -- input shapes, classes and the export's checks (machine-readable);
* ``model.pt`` -- TorchScript (traced), ``model.onnx`` -- ONNX (opset 17, dynamic batch),
  ``model.py`` -- stand-alone PyTorch code (torch only) that rebuilds the exact module;
* ``MODEL_CARD.md`` -- objectives, costs, dataset, search settings, parity, and the
  commands that reproduce the search and the export.

Every format is checked against the original module on a batch of real inputs (the
study's test split when the dataset is available here): the maximum absolute difference
of the logits must be at most ``1e-5``. Formats are traced with 2 samples and checked on
the whole batch, which proves the batch dimension is not baked in.

Nothing here pickles: weights are safetensors, metadata JSON, ``model.pt`` is read back
with ``torch.jit.load`` (TorchScript's own restricted format), and ``load`` rebuilds the
module from ``spec.json`` + ``weights.safetensors``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.trial import FrozenTrial, TrialState
from safetensors.torch import load_file, save_file

from hadanas._logging import get_logger
from hadanas.exceptions import ConfigError, HadanasError, SpecError, StoreError
from hadanas.search._codegen import ExportGap, generate_code, load_generated
from hadanas.spaces import ArchSpec, HadaNet, build_model, count_flops, count_params

__all__ = [
    "FORMATS",
    "ExportGap",
    "ExportReport",
    "ParetoExport",
    "export_model",
    "export_pareto",
    "export_trial",
    "load",
]

log = get_logger(__name__)

#: Every format; ``spec`` and ``safetensors`` are always written (``load`` needs them).
FORMATS: tuple[str, ...] = ("spec", "safetensors", "torchscript", "onnx", "code")
FILES = {
    "spec": "spec.json",
    "safetensors": "weights.safetensors",
    "torchscript": "model.pt",
    "onnx": "model.onnx",
    "code": "model.py",
    "card": "MODEL_CARD.md",
    "meta": "hadanas.json",
}
TOLERANCE = 1e-5
PARITY_BATCH = 64
TRACE_BATCH = 2
ONNX_OPSET = 17
INDEX = "index.json"
_ONNX_HINT = "pip install 'hadanas[onnx]'"


@dataclass
class ExportReport:
    """What one export wrote and how each format compared with the original module."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    parity: dict[str, float] = field(default_factory=dict)  # format -> max |diff| of logits
    failed: dict[str, str] = field(default_factory=dict)  # format -> why it was not written
    tolerance: float = TOLERANCE
    inputs: str = ""  # what the parity batch was
    trial: int | None = None
    test_accuracy: float | None = None
    retrain: dict[str, Any] | None = None
    #: When a check fails: the original's own float32 rounding (max |float32 - float64|).
    float32_noise: float | None = None

    @property
    def ok(self) -> bool:
        """Every requested format was written and matches within the tolerance."""
        return not self.failed and all(v <= self.tolerance for v in self.parity.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "trial": self.trial,
            "ok": self.ok,
            "files": {k: p.name for k, p in self.files.items()},
            "parity": {k: (v if math.isfinite(v) else None) for k, v in self.parity.items()},
            "failed": dict(self.failed),
            "tolerance": self.tolerance,
            "parity_inputs": self.inputs,
            "test_accuracy": self.test_accuracy,
            "retrain": self.retrain,
            "float32_noise": self.float32_noise,
        }


@dataclass
class ParetoExport:
    """``export_pareto``'s result: one report per front member and the index file."""

    out: Path
    index: Path
    reports: list[ExportReport]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)


# --- arguments -------------------------------------------------------------------------


def check_formats(formats: Sequence[str] | str | None) -> tuple[str, ...]:
    """Normalise ``formats`` (names or a comma-separated string; ``all``) and check that
    the exporters they need are installed. Raises :class:`ConfigError`."""
    if formats is None:
        names = list(FORMATS)
    elif isinstance(formats, str):
        names = [f.strip() for f in formats.split(",") if f.strip()]
    else:
        names = [str(f).strip() for f in formats]
    if "all" in names:
        names = list(FORMATS)
    for f in names:
        if f not in FORMATS:
            from hadanas.exceptions import close_matches

            raise ConfigError(
                f"unknown export format '{f}'." + close_matches(f, FORMATS)
                + f" Valid formats: {', '.join(FORMATS)} (or all)."
            )
    chosen = tuple(f for f in FORMATS if f in names or f in ("spec", "safetensors"))
    if "onnx" in chosen:
        missing = [m for m in ("onnx", "onnxruntime") if not _importable(m)]
        if missing:
            raise ConfigError(
                f"format 'onnx' needs {' and '.join(missing)}, which "
                f"{'is' if len(missing) == 1 else 'are'} not installed: {_ONNX_HINT} "
                "(or leave onnx out of --formats)."
            )
    return chosen


def _importable(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


# --- the study side --------------------------------------------------------------------


def _trial(study: optuna.Study, number: int) -> FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < len(trials):
        last = f"trials are 0..{len(trials) - 1}" if trials else "it has no trials"
        raise StoreError(f"study '{study.study_name}' has no trial {number} ({last}).")
    t = trials[number]
    if t.state != TrialState.COMPLETE:
        reason = t.user_attrs.get("fail_reason")
        raise StoreError(
            f"trial {number} of study '{study.study_name}' is {t.state.name}, not COMPLETE"
            + (f" ({reason})" if reason else "") + "; pick a completed trial from 'hadanas pareto'."
        )
    if t.user_attrs.get("status") == "infeasible":
        raise StoreError(
            f"trial {number} of study '{study.study_name}' is infeasible (over a constraint: "
            f"{t.user_attrs.get('constraints')}) and was never trained; pick one from 'hadanas pareto'."
        )
    if "spec" not in t.user_attrs:
        raise StoreError(f"trial {number} of study '{study.study_name}' records no architecture spec.")
    return t


def _weights(study: optuna.Study, t: FrozenTrial) -> dict[str, torch.Tensor]:
    aid = t.user_attrs.get("weights_artifact")
    art = study.user_attrs.get("artifact_dir")
    if not aid or not art:
        raise StoreError(f"trial {t.number} has no stored weights; use --retrain-epochs to train it.")
    if not Path(art).exists():
        raise StoreError(
            f"the weights of trial {t.number} live in '{art}', which does not exist on this "
            "machine; copy that folder here or use --retrain-epochs."
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.safetensors")
        try:
            download_artifact(artifact_store=FileSystemArtifactStore(art), file_path=path, artifact_id=aid)
            return load_file(path)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"cannot read the weights of trial {t.number} from '{art}': {first}") from None


def _study_shapes(study: optuna.Study) -> tuple[list[list[int]], int]:
    shapes = study.user_attrs.get("input_shapes")
    num_classes = study.user_attrs.get("num_classes")
    if not shapes or not num_classes:
        raise StoreError(
            f"study '{study.study_name}' does not record input shapes and classes; was it made by hadanas?"
        )
    return [list(s) for s in shapes], int(num_classes)


def _config(study: optuna.Study) -> dict[str, Any]:
    cfg = study.user_attrs.get("config")
    return dict(cfg) if isinstance(cfg, dict) else {}


def _dataset(study: optuna.Study) -> tuple[Any, str]:
    """The study's dataset split as in the search, or ``(None, why not)``."""
    name = study.user_attrs.get("dataset")
    if not name:
        return None, "the study records no dataset"
    cfg = _config(study)
    try:
        from hadanas.trainers import load_dataset

        data = load_dataset(name, int(cfg.get("data_seed", 0)), cfg.get("subset"))
    except HadanasError as exc:
        return None, f"dataset '{name}' is not available here: {exc}"
    except (ImportError, OSError, ValueError) as exc:
        return None, f"dataset '{name}' is not available here: {type(exc).__name__}: {exc}"
    recorded = [list(s) for s in study.user_attrs.get("input_shapes") or []]
    if [list(s) for s in data.input_shapes] != recorded:
        return None, (f"dataset '{name}' now has input shapes {[list(s) for s in data.input_shapes]}, "
                      f"but the study recorded {recorded}")
    return data, ""


def _storage_url(study: optuna.Study) -> str:
    from hadanas.search._store import mask_url

    storage = getattr(study, "_storage", None)
    url = getattr(storage, "url", None) or getattr(getattr(storage, "_backend", None), "url", None)
    return mask_url(url) if isinstance(url, str) else "URL"


def _retrain(spec: ArchSpec, data: Any, study: optuna.Study, epochs: int, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from hadanas.trainers import TrainConfig, fit_spec, quiet_lightning

    cfg = _config(study)
    train = TrainConfig(epochs=epochs, batch_size=int(cfg.get("batch_size", 128)), lr=float(cfg.get("lr", 1e-2)),
                        weight_decay=float(cfg.get("weight_decay", 1e-4)))
    quiet_lightning()
    log.info("retraining %s from scratch for %d epoch(s) on train+val (seed %d)", spec.summary(), epochs, seed)
    from hadanas.exceptions import TrialFailed

    try:
        res = fit_spec(spec, data, train, seed=seed, splits=("train", "val"))
    except TrialFailed as exc:
        raise ConfigError(f"retraining failed: {exc}; try another --seed.") from None
    info = {"epochs": res.epochs, "epochs_asked": epochs, "seed": seed, "splits": ["train", "val"],
            "batch_size": train.batch_size, "lr": train.lr, "device": res.device,
            "wall_time_s": round(res.wall_s, 2)}
    return res.state_dict, info


# --- public API ------------------------------------------------------------------------


def export_trial(
    study: optuna.Study,
    number: int,
    out: str | Path,
    formats: Sequence[str] | str | None = None,
    *,
    retrain_epochs: int | None = None,
    seed: int = 0,
    inputs: Sequence[torch.Tensor] | None = None,
    tolerance: float = TOLERANCE,
) -> ExportReport:
    """Export trial ``number`` of ``study`` to ``out`` and check every format.

    With ``retrain_epochs`` the architecture is trained from scratch on train+val with
    ``seed`` and the retrained weights are exported; either way the test accuracy of the
    exported weights is measured when the dataset is available. ``inputs`` overrides the
    parity batch. Raises :class:`StoreError` (unknown trial, not complete, infeasible,
    no weights) and :class:`ConfigError` (bad format, missing exporter).
    """
    chosen = check_formats(formats)
    if retrain_epochs is not None and (not isinstance(retrain_epochs, int) or isinstance(retrain_epochs, bool)
                                       or retrain_epochs < 1):
        raise ConfigError(f"retrain_epochs must be a positive integer, but got {retrain_epochs!r}.")
    t = _trial(study, number)
    shapes, num_classes = _study_shapes(study)
    spec = ArchSpec.from_dict(t.user_attrs["spec"])
    data, no_data = _dataset(study)
    retrain = None
    if retrain_epochs is not None:
        if data is None:
            raise ConfigError(f"cannot retrain trial {number}: {no_data}.")
        state, retrain = _retrain(spec, data, study, retrain_epochs, seed)
    else:
        state = _weights(study, t)
    model = build_model(spec, shapes, num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise StoreError(f"the stored weights of trial {number} do not fit its spec: "
                         f"{str(exc).splitlines()[0]}") from None
    model.eval()
    test_acc = None
    if data is not None:
        from hadanas.trainers import evaluate

        test_acc = evaluate(model, data, "test")
    note = ""
    if inputs is None and data is not None:
        inputs = [x[:PARITY_BATCH] for x in data.inputs["test"]]
        note = f"the first {int(inputs[0].shape[0])} test samples of '{data.name}'"
    elif inputs is None:
        note = f"random normal inputs ({no_data})"
    facts = _trial_facts(study, t, data, out, chosen, retrain_epochs, seed, tolerance)
    report = export_model(model, spec, shapes, num_classes, out, chosen, inputs=inputs,
                          inputs_note=note, facts=facts, tolerance=tolerance,
                          trial=t.number, test_accuracy=test_acc, retrain=retrain)
    return report


def export_pareto(
    study: optuna.Study,
    out: str | Path,
    formats: Sequence[str] | str | None = None,
    *,
    retrain_epochs: int | None = None,
    seed: int = 0,
    tolerance: float = TOLERANCE,
) -> ParetoExport:
    """Export every member of the study's Pareto front to ``out/trial-N`` and write
    ``out/index.json`` (and ``out/INDEX.md``) listing them."""
    from hadanas.search._runner import front_trials

    chosen = check_formats(formats)
    front = sorted(front_trials(study), key=lambda t: t.number)
    if not front:
        raise StoreError(
            f"study '{study.study_name}' has no completed feasible trial, so its front is empty."
        )
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    reports = [
        export_trial(study, t.number, root / f"trial-{t.number}", chosen,
                     retrain_epochs=retrain_epochs, seed=seed, tolerance=tolerance)
        for t in front
    ]
    objectives = list(study.user_attrs.get("objectives", []))
    members = []
    for t, r in zip(front, reports):
        a = t.user_attrs
        members.append({
            "trial": t.number, "dir": r.out.name, "ok": r.ok,
            "values": dict(zip(objectives, t.values)) if objectives else list(t.values),
            "params": a.get("params"), "flops": a.get("flops"), "latency_ms": a.get("latency_ms"),
            "val_accuracy": a.get("val_accuracy"), "test_accuracy": r.test_accuracy,
            "retrain": r.retrain, "summary": a.get("summary"), "fingerprint": a.get("fingerprint"),
            "parity": r.to_dict()["parity"], "failed": r.failed,
        })
    index = {
        "format": "hadanas-pareto-export", "version": 1, "study": study.study_name,
        "storage": _storage_url(study), "objectives": objectives,
        "directions": [d.name.lower() for d in study.directions],
        "dataset": study.user_attrs.get("dataset"), "formats": list(chosen),
        "tolerance": tolerance, "members": members,
    }
    path = root / INDEX
    path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (root / "INDEX.md").write_text(_index_markdown(index), encoding="utf-8")
    return ParetoExport(root, path, reports)


def export_model(
    model: torch.nn.Module,
    spec: ArchSpec,
    input_shapes: Sequence[Sequence[int]],
    num_classes: int,
    out: str | Path,
    formats: Sequence[str] | str | None = None,
    *,
    inputs: Sequence[torch.Tensor] | None = None,
    inputs_note: str = "",
    facts: dict[str, Any] | None = None,
    tolerance: float = TOLERANCE,
    trial: int | None = None,
    test_accuracy: float | None = None,
    retrain: dict[str, Any] | None = None,
) -> ExportReport:
    """Write ``model`` (built from ``spec``) in every format to ``out`` and check parity.

    Needs no study: ``facts`` adds what the model card should say about where the model
    came from. ``model`` is put in eval mode on the CPU. A format that cannot be produced
    is listed in ``report.failed`` with the reason; the others are still written. Files of
    an earlier export in ``out`` are replaced or removed; other files are left alone.
    """
    chosen = check_formats(formats)
    shapes = [list(map(int, s)) for s in input_shapes]
    model = model.to("cpu").eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():  # a file of an earlier export here would not match these weights
        (out / name).unlink(missing_ok=True)
    if inputs is None:
        gen = torch.Generator().manual_seed(0)
        inputs = [torch.randn(PARITY_BATCH, *s, generator=gen) for s in shapes]
        inputs_note = inputs_note or "random normal inputs"
    xs = [x.detach().to("cpu", torch.float32) for x in inputs]
    trace_xs = [x[:TRACE_BATCH] for x in xs]
    report = ExportReport(out, tolerance=tolerance, trial=trial, test_accuracy=test_accuracy,
                          retrain=retrain,
                          inputs=f"{inputs_note or 'given inputs'} (batch {int(xs[0].shape[0])})")
    names = list(spec.inputs)

    (out / FILES["spec"]).write_text(spec.to_json(indent=2) + "\n", encoding="utf-8")
    report.files["spec"] = out / FILES["spec"]
    from hadanas import __version__

    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
              str(out / FILES["safetensors"]),
              metadata={"hadanas": __version__, "spec_fingerprint": spec.fingerprint()})
    report.files["safetensors"] = out / FILES["safetensors"]
    _write_meta(report, spec, shapes, num_classes, facts)

    with torch.no_grad():
        ref = model(*xs)
        report.parity["safetensors"] = _diff(load(out)(*xs), ref)
        if "torchscript" in chosen:
            _attempt(report, "torchscript", lambda: _torchscript(model, trace_xs, xs, out, ref))
        if "onnx" in chosen:
            _attempt(report, "onnx", lambda: _onnx(model, trace_xs, xs, names, out, ref))
        if "code" in chosen:
            _attempt(report, "code", lambda: _code(spec, shapes, num_classes, xs, out, ref, facts))
        if any(v > tolerance for v in report.parity.values()):
            report.float32_noise = _float32_noise(model, xs, ref)
    _write_meta(report, spec, shapes, num_classes, facts)
    (out / FILES["card"]).write_text(_model_card(spec, shapes, num_classes, model, report, facts),
                                     encoding="utf-8")
    report.files["card"] = out / FILES["card"]
    return report


def load(directory: str | Path) -> HadaNet:
    """Rebuild an exported model from ``spec.json`` + ``weights.safetensors`` (no pickle)."""
    d = Path(directory)
    if not d.is_dir():
        raise StoreError(f"'{d}' is not a directory; pass the folder 'hadanas export' wrote.")
    if (d / INDEX).exists() and not (d / FILES["spec"]).exists():
        members = sorted(p.name for p in d.glob("trial-*") if p.is_dir())
        raise StoreError(f"'{d}' is a Pareto export; load one of its members"
                         + (f", e.g. '{d / members[0]}'." if members else "."))
    try:
        meta_bytes = (d / FILES["meta"]).read_bytes()
        spec_bytes = (d / FILES["spec"]).read_bytes()
    except FileNotFoundError as exc:
        raise StoreError(f"'{d}' is not a hadanas export: {Path(exc.filename).name} is missing.") from None
    try:
        meta: Any = json.loads(meta_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise StoreError(f"'{d / FILES['meta']}' is not valid JSON: {str(exc).splitlines()[0][:200]}.") from None
    shapes = meta.get("input_shapes") if isinstance(meta, dict) else None
    num_classes = meta.get("num_classes") if isinstance(meta, dict) else None
    if (not isinstance(shapes, list) or not 1 <= len(shapes) <= 2
            or not all(isinstance(s, list) and 1 <= len(s) <= 3 and all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65536 for v in s) for s in shapes)
            or not isinstance(num_classes, int) or isinstance(num_classes, bool) or not 2 <= num_classes <= 1_000_000):
        raise StoreError(f"'{d / FILES['meta']}' must be an object with 'input_shapes' (a list of one or two "
                         "shapes such as [1, 8, 8]) and 'num_classes' (an integer >= 2), as "
                         "'hadanas export' writes it.")
    try:
        spec = ArchSpec.from_json(spec_bytes)
    except SpecError as exc:
        raise SpecError(f"'{d / FILES['spec']}': {exc}") from None
    try:
        weights = load_file(str(d / FILES["safetensors"]))
    except FileNotFoundError as exc:
        raise StoreError(f"'{d}' is not a hadanas export: {Path(exc.filename).name} is missing.") from None
    except Exception as exc:  # safetensors raises its own error types
        raise StoreError(f"cannot read '{d / FILES['safetensors']}': {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__}.") from None
    try:
        model = build_model(spec, shapes, num_classes)
    except HadanasError:
        raise
    except (ValueError, RuntimeError) as exc:
        raise StoreError(f"the spec.json in '{d}' cannot be built for input shapes {shapes}: "
                         f"{str(exc).strip().splitlines()[0][:300]}") from None
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise StoreError(f"the weights in '{d}' do not fit its spec.json: "
                         f"{str(exc).strip().splitlines()[0]}") from None
    return model.eval()


# --- formats ---------------------------------------------------------------------------


def _diff(y: Any, ref: torch.Tensor) -> float:
    y = torch.as_tensor(y)
    if tuple(y.shape) != tuple(ref.shape):
        return math.inf
    d = (y.to(ref.dtype) - ref).abs()
    return float(d.max()) if bool(torch.isfinite(d).all()) else math.inf


def _float32_noise(model: torch.nn.Module, xs: list[torch.Tensor], ref: torch.Tensor) -> float | None:
    """How far the original's float32 logits are from its float64 ones: the scale below
    which no exported format can be expected to agree. None when the model cannot run in
    float64 (an op that casts to float32 itself)."""
    import copy

    try:
        y64 = copy.deepcopy(model).double()(*(x.double() for x in xs))
        return float((ref.double() - y64).abs().max())
    except Exception:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


def _attempt(report: ExportReport, fmt: str, fn: Any) -> None:
    path = report.out / FILES[fmt]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report.parity[fmt] = fn()
        report.files[fmt] = path
    except ExportGap as exc:
        report.failed[fmt] = str(exc)
    except Exception as exc:  # an exporter's own failure: reported, not fatal
        report.failed[fmt] = _first_line(exc)
    if fmt in report.failed:
        log.warning("%s not written: %s", FILES[fmt], report.failed[fmt])
        path.unlink(missing_ok=True)


def _torchscript(model: torch.nn.Module, trace_xs: list[torch.Tensor], xs: list[torch.Tensor],
                 out: Path, ref: torch.Tensor) -> float:
    traced = torch.jit.trace(model, tuple(trace_xs), check_trace=False)
    path = out / FILES["torchscript"]
    traced.save(str(path))
    back = torch.jit.load(str(path), map_location="cpu")
    return _diff(back(*xs), ref)


@contextlib.contextmanager
def _onnx_symbolics(opset: int) -> Iterator[None]:
    """Symbolics the legacy ONNX exporter lacks, registered only for one export.

    ``aten::expm1`` (AFT-conv's position-bias kernel) becomes ``Exp(x) - 1``.
    """
    from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic

    def expm1(g: Any, x: Any) -> Any:
        try:
            dtype = x.type().dtype()
        except Exception:  # type unknown to the tracer: AFT-conv computes it in float32
            dtype = torch.float32
        one = g.op("Constant", value_t=torch.tensor(1.0, dtype=dtype))
        return g.op("Sub", g.op("Exp", x), one)

    register_custom_op_symbolic("aten::expm1", expm1, opset)
    try:
        yield
    finally:
        unregister_custom_op_symbolic("aten::expm1", opset)


@contextlib.contextmanager
def _quiet_native_output() -> Iterator[None]:
    """Silence file descriptors 1 and 2 (the legacy ONNX exporter's C++ logger prints the
    whole TorchScript graph on failure, whatever ``verbose`` says)."""
    import sys

    saved: list[tuple[int, int]] = []
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull, fd)
        finally:
            os.close(devnull)
    except OSError:  # no such descriptors (an embedded interpreter): leave output as it is
        pass
    try:
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def _onnx(model: torch.nn.Module, trace_xs: list[torch.Tensor], xs: list[torch.Tensor],
          names: list[str], out: Path, ref: torch.Tensor) -> float:
    import onnx
    import onnxruntime as ort

    path = out / FILES["onnx"]
    axes = {n: {0: "batch"} for n in [*names, "logits"]}
    try:
        with _onnx_symbolics(ONNX_OPSET), _quiet_native_output():
            torch.onnx.export(model, tuple(trace_xs), str(path), dynamo=False, verbose=False,
                              input_names=names, output_names=["logits"], dynamic_axes=axes,
                              opset_version=ONNX_OPSET, do_constant_folding=True)
    except Exception as exc:
        raise ExportGap(_onnx_gap(model, trace_xs, exc)) from None
    onnx.checker.check_model(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {n: x.numpy() for n, x in zip(names, xs)})[0]
    return _diff(torch.from_numpy(got), ref)


def _onnx_gap(model: torch.nn.Module, trace_xs: list[torch.Tensor], exc: Exception) -> str:
    """A one-line reason naming the unsupported aten op and the modules that use it."""
    text = str(exc)
    m = re.search(r"aten::[A-Za-z0-9_.]+", text)
    if not m:
        return f"the ONNX exporter failed: {_first_line(exc)}"
    aten = m.group(0)
    users: list[str] = []
    try:
        traced = torch.jit.trace(model, tuple(trace_xs), check_trace=False)
        for node in traced.inlined_graph.nodes():
            if node.kind() == aten:
                path = node.scopeName().split("/")[-1].replace("__module.", "")
                sub = model.get_submodule(path) if path else model
                where = f"{type(sub).__name__} at {path}" if path else type(sub).__name__
                if where not in users:
                    users.append(where)
    except Exception:  # attribution is best effort
        pass
    by = f", used by {', '.join(users[:3])}" if users else ""
    return f"the ONNX exporter (opset {ONNX_OPSET}) does not support {aten}{by}"


def _code(spec: ArchSpec, shapes: list[list[int]], num_classes: int, xs: list[torch.Tensor],
          out: Path, ref: torch.Tensor, facts: dict[str, Any] | None) -> float:
    title = (facts or {}).get("title", "")
    path = out / FILES["code"]
    path.write_text(generate_code(spec, shapes, num_classes, title=title), encoding="utf-8")
    module = load_generated(path, f"hadanas_export_{spec.fingerprint()}")
    net = module.build(str(out / FILES["safetensors"]))
    return _diff(net(*xs), ref)


# --- metadata, model card, index -------------------------------------------------------


def _write_meta(report: ExportReport, spec: ArchSpec, shapes: list[list[int]], num_classes: int,
                facts: dict[str, Any] | None) -> None:
    from hadanas import __version__

    f = facts or {}
    meta = {
        "format": "hadanas-export", "version": 1, "hadanas_version": __version__,
        "input_shapes": shapes, "num_classes": int(num_classes), "inputs": list(spec.inputs),
        "fingerprint": spec.fingerprint(),
        **{k: f.get(k) for k in ("study", "storage", "dataset", "objectives", "values") if k in f},
        **report.to_dict(),
    }
    meta.pop("out", None)
    path = report.out / FILES["meta"]
    path.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    report.files["meta"] = path


def _trial_facts(study: optuna.Study, t: FrozenTrial, data: Any, out: str | Path,
                 formats: tuple[str, ...], retrain_epochs: int | None, seed: int,
                 tolerance: float) -> dict[str, Any]:
    from hadanas.search._objectives import format_value

    objectives = list(study.user_attrs.get("objectives", []))
    cfg = _config(study)
    url = _storage_url(study)
    export_cmd = ["hadanas", "export", "--storage", url, "--study", study.study_name,
                  "--trial", str(t.number), "--out", str(out)]
    if set(formats) != set(FORMATS):
        export_cmd += ["--formats", ",".join(f for f in formats if f not in ("spec", "safetensors"))
                       or "spec"]
    if retrain_epochs is not None:
        export_cmd += ["--retrain-epochs", str(retrain_epochs), "--seed", str(seed)]
    if tolerance != TOLERANCE:
        export_cmd += ["--tolerance", f"{tolerance:g}"]
    skip = {"storage", "study", "resume", "out", "artifacts", "ray_address"}
    search_cfg = {k: v for k, v in cfg.items() if k not in skip}
    a = t.user_attrs
    return {
        "title": f"trial {t.number} of study '{study.study_name}'",
        "study": study.study_name, "storage": url, "trial": t.number,
        "objectives": objectives,
        "values": dict(zip(objectives, t.values)) if objectives else list(t.values),
        "values_text": [f"{o} {format_value(o, v)}" for o, v in zip(objectives, t.values)],
        "directions": [d.name.lower() for d in study.directions],
        "status": a.get("status"), "epochs": a.get("epochs"), "val_accuracy": a.get("val_accuracy"),
        "history": a.get("history"), "latency_ms": a.get("latency_ms"), "device": a.get("device"),
        "wall_time_s": a.get("wall_time_s"), "duplicate_of": a.get("duplicate_of"),
        "params": a.get("params"), "flops": a.get("flops"),
        "dataset": study.user_attrs.get("dataset"),
        "dataset_sizes": data.sizes() if data is not None else None,
        "space": study.user_attrs.get("space"), "hadanas_version": study.user_attrs.get("hadanas_version"),
        "search_config": search_cfg,
        "export_command": shlex.join(export_cmd),
        "search_command": "hadanas search --config search.yaml --storage sqlite:///reproduce.db",
    }


def _fmt_num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and v >= 10_000:
        return f"{v:,}"
    return str(v)


def _model_card(spec: ArchSpec, shapes: list[list[int]], num_classes: int, model: torch.nn.Module,
                report: ExportReport, facts: dict[str, Any] | None) -> str:
    import yaml

    f = facts or {}
    title = f.get("title") or f"architecture {spec.fingerprint()}"
    params = f.get("params") if f.get("params") is not None else count_params(model)
    flops = f.get("flops")
    if flops is None:
        flops = count_flops(model, [tuple(s) for s in shapes])
    L: list[str] = [f"# Model card: {title}", ""]
    L += [f"`{spec.summary()}`", "", f"Spec fingerprint `{spec.fingerprint()}`; inputs "
          + ", ".join(f"{n} {tuple(s)}" for n, s in zip(spec.inputs, shapes))
          + f"; {num_classes} classes.", ""]
    if f.get("objectives"):
        L += ["## Objectives", "", "| objective | direction | value |", "|---|---|---|"]
        for o, d, v in zip(f["objectives"], f.get("directions", []), f["values_text"]):
            L.append(f"| {o} | {d} | {v.split(' ', 1)[1]} |")
        L.append("")
    L += ["## Costs", "", "| cost | value |", "|---|---|",
          f"| parameters | {_fmt_num(params)} |",
          f"| FLOPs (batch 1, element-wise work included) | {_fmt_num(flops)} |",
          f"| latency (ms, search device) | {_fmt_num(f.get('latency_ms'))} |", ""]
    L += ["## Training and accuracy", ""]
    if f.get("trial") is not None:
        L.append(f"- search: status {f.get('status')}, {f.get('epochs')} epoch(s) on train, validation "
                 f"accuracy {_fmt_num(f.get('val_accuracy'))} (per epoch: "
                 f"{', '.join(f'{h:.4f}' for h in f.get('history') or []) or '-'}), device "
                 f"{f.get('device')}" + (f", weights of trial {f['duplicate_of']} (same spec)"
                                         if f.get("duplicate_of") is not None else "") + ".")
    if report.retrain:
        r = report.retrain
        L.append(f"- exported weights: retrained from scratch for {r['epochs']} epoch(s) on "
                 f"train+val (seed {r['seed']}, batch {r['batch_size']}, lr {r['lr']}, "
                 f"{r['device']}, {r['wall_time_s']} s).")
    elif f.get("trial") is not None:
        L.append("- exported weights: the search trial's own weights.")
    if report.test_accuracy is not None:
        L.append(f"- **test accuracy of the exported weights: {report.test_accuracy:.4f}**")
    L.append("")
    if f.get("dataset"):
        sizes = f.get("dataset_sizes")
        cfg = f.get("search_config", {})
        L += ["## Dataset", "", f"- `{f['dataset']}`, split with data seed {cfg.get('data_seed', 0)}"
              + (f", subset {cfg['subset']}" if cfg.get("subset") else "")
              + (": " + ", ".join(f"{k} {v}" for k, v in sizes.items()) if sizes else "") + ".", ""]
    if f.get("search_config"):
        L += ["## Search settings", "",
              f"Study `{f['study']}` in `{f['storage']}`, space `{f.get('space')}`, hadanas "
              f"{f.get('hadanas_version')}. As `search.yaml`:", "", "```yaml",
              yaml.safe_dump(f["search_config"], sort_keys=True).rstrip(), "```", ""]
    L += ["## Exported files and parity", "",
          f"Each format's logits against the original module's on {report.inputs}; "
          f"tolerance {report.tolerance:g} (max absolute difference).", "",
          "| format | file | max abs diff | result |", "|---|---|---|---|"]
    for fmt in ("safetensors", "torchscript", "onnx", "code"):
        if fmt in report.parity:
            d = report.parity[fmt]
            L.append(f"| {fmt} | `{FILES[fmt]}` | {d:.2e} | {'ok' if d <= report.tolerance else 'FAILED'} |")
        elif fmt in report.failed:
            L.append(f"| {fmt} | not written | - | {_cell(report.failed[fmt])} |")
    if report.float32_noise is not None:
        L += ["", f"The original module's own float32 rounding on these inputs (max |float32 - "
              f"float64|) is {report.float32_noise:.2e}: a difference of that size is rounding, "
              "not an export error."]
    L += ["", "## Reproduce", ""]
    if f.get("search_command"):
        L += ["The search (with `search.yaml` as above):", "", "```sh", f["search_command"], "```", ""]
    if f.get("export_command"):
        L += ["This export:", "", "```sh", f["export_command"], "```", ""]
    L += ["## Use", "", "```python",
          "import hadanas", "net = hadanas.load('.')            # spec.json + weights.safetensors",
          "", "import torch", "net = torch.jit.load('model.pt')   # TorchScript", "",
          "import onnxruntime", "sess = onnxruntime.InferenceSession('model.onnx')  # inputs: "
          + ", ".join(spec.inputs) + "; output: logits", "",
          "from model import build             # torch only", "net = build('weights.safetensors')",
          "```", ""]
    return "\n".join(L)


def _cell(text: str) -> str:
    """Text for a Markdown table cell (a ``|`` would end the cell)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _index_markdown(index: dict[str, Any]) -> str:
    from hadanas.search._objectives import format_value

    objectives = index["objectives"]
    L = [f"# Pareto front of study '{index['study']}'", "",
         f"{len(index['members'])} member(s); formats {', '.join(index['formats'])}; "
         f"parity tolerance {index['tolerance']:g}.", "",
         "| trial | dir | " + " | ".join(objectives) + " | params | test acc | parity | architecture |",
         "|---|---|" + "---|" * len(objectives) + "---|---|---|---|"]
    for m in index["members"]:
        vals = ([format_value(o, m["values"].get(o)) for o in objectives]
                if isinstance(m["values"], dict) else [])
        parity = "ok" if m["ok"] else "FAILED: " + "; ".join(
            [f"{k} {v}" for k, v in m["failed"].items()]
            + [f"{k} {'inf' if v is None else f'{v:.1e}'}" for k, v in m["parity"].items()
               if v is None or v > index["tolerance"]])
        L.append(f"| {m['trial']} | [{m['dir']}]({m['dir']}/MODEL_CARD.md) | " + " | ".join(vals)
                 + f" | {_fmt_num(m['params'])} | {_fmt_num(m['test_accuracy'])} | {_cell(parity)} | "
                 f"`{_cell(m['summary'])}` |")
    return "\n".join(L) + "\n"
