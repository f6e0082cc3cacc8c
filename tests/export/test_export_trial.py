"""export_trial / export_pareto / load against the shared tiny search (a real 6-trial study).

One trial of the front is exported once in every format (module fixture); the tests read
what it wrote: the weights are the trial's, each format matches on real digits images, the
model card states values that are checked against the store, ``model.py`` runs in a fresh
interpreter in which hadanas and safetensors cannot be imported.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from safetensors.torch import load_file, save_file

import hadanas
from hadanas.config import SearchConfig
from hadanas.exceptions import ConfigError, StoreError
from hadanas.search._export import TOLERANCE, export_pareto, export_trial, load
from hadanas.spaces import ArchSpec, HadaNet, count_params
from hadanas.trainers import evaluate, load_dataset

pytestmark = pytest.mark.ray  # uses the shared tiny search (a Ray runtime)


@pytest.fixture(scope="module")
def data() -> Any:
    return load_dataset("digits", 0)


@pytest.fixture(scope="module")
def exported(study: Any, front_trial: int, tmp_path_factory: pytest.TempPathFactory,
             kit: SimpleNamespace) -> Any:
    kit.require(kit.onnx_available(), "onnx and onnxruntime: pip install 'hadanas[onnx]'")
    out = tmp_path_factory.mktemp("trial") / "export"
    return export_trial(study, front_trial, out)


def _stored_weights(study: Any, number: int, tmp: Path) -> dict[str, torch.Tensor]:
    t = study.trials[number]
    path = tmp / "stored.safetensors"
    download_artifact(artifact_store=FileSystemArtifactStore(study.user_attrs["artifact_dir"]),
                      file_path=str(path), artifact_id=t.user_attrs["weights_artifact"])
    return load_file(str(path))


def test_every_file_is_written_and_every_format_matches(exported: Any, front_trial: int) -> None:
    names = {p.name for p in exported.out.iterdir()}
    assert names == {"spec.json", "weights.safetensors", "hadanas.json", "model.pt", "model.onnx",
                     "model.py", "MODEL_CARD.md"}
    assert exported.ok and not exported.failed and exported.trial == front_trial
    assert set(exported.parity) == {"safetensors", "torchscript", "onnx", "code"}
    assert all(0 <= d <= TOLERANCE for d in exported.parity.values()), exported.parity
    assert exported.inputs == "the first 64 test samples of 'digits' (batch 64)"


def test_exported_weights_are_the_trials_stored_weights(exported: Any, study: Any,
                                                        front_trial: int, tmp_path: Path) -> None:
    stored = _stored_weights(study, front_trial, tmp_path)
    written = load_file(str(exported.out / "weights.safetensors"))
    assert written.keys() == stored.keys()
    assert all(torch.equal(written[k], stored[k]) for k in stored)
    spec = json.loads((exported.out / "spec.json").read_text())
    assert ArchSpec.from_dict(spec).fingerprint() == study.trials[front_trial].user_attrs["fingerprint"]


def test_load_rebuilds_the_module_with_the_test_accuracy_reported(exported: Any, data: Any) -> None:
    net = hadanas.load(exported.out)
    assert isinstance(net, HadaNet) and not net.training
    acc = evaluate(net, data, "test")
    assert acc == pytest.approx(exported.test_accuracy, abs=0)
    assert 0.1 < acc <= 1.0  # 10 classes: a trained front member beats chance


def test_formats_agree_on_other_batch_sizes(exported: Any, data: Any) -> None:
    """Traced with 2 samples, checked with 64: the batch size is not baked in (1 and 5 here)."""
    import onnxruntime as ort

    net = load(exported.out)
    ts = torch.jit.load(str(exported.out / "model.pt"))
    sess = ort.InferenceSession(str(exported.out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"]
    assert sess.get_inputs()[0].shape[0] == "batch"
    for n in (1, 5):
        x = data.inputs["val"][0][:n]
        with torch.no_grad():
            ref = net(x)
            assert (ts(x) - ref).abs().max() <= TOLERANCE
        got = torch.from_numpy(sess.run(["logits"], {"image": x.numpy()})[0])
        assert got.shape == (n, 10) and (got - ref).abs().max() <= TOLERANCE


def test_model_card_states_what_the_store_records(exported: Any, study: Any, front_trial: int) -> None:
    card = (exported.out / "MODEL_CARD.md").read_text()
    t = study.trials[front_trial]
    assert f"trial {front_trial} of study '{study.study_name}'" in card
    assert f"| accuracy | maximize | {t.values[0]:.4f} |" in card
    assert f"| parameters | {t.user_attrs['params']:,} |" in card
    assert t.user_attrs["params"] == count_params(load(exported.out))
    assert f"**test accuracy of the exported weights: {exported.test_accuracy:.4f}**" in card
    assert "`digits`, split with data seed 0: train 1078, val 359, test 360." in card
    for fmt, file in (("torchscript", "model.pt"), ("onnx", "model.onnx"), ("code", "model.py")):
        assert re.search(rf"\| {fmt} \| `{re.escape(file)}` \| [0-9.e+-]+ \| ok \|", card), fmt
    cmd = re.search(r"```sh\n(hadanas export .*)\n```", card).group(1)  # type: ignore[union-attr]
    assert f"--study {study.study_name} --trial {front_trial} --out {exported.out}" in cmd


def test_model_card_search_settings_are_a_valid_config_of_the_same_search(exported: Any,
                                                                         study: Any) -> None:
    card = (exported.out / "MODEL_CARD.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", card, re.S).group(1)  # type: ignore[union-attr]
    cfg = SearchConfig.from_mapping(yaml.safe_load(block), source="card")
    stored = study.user_attrs["config"]
    for key in ("space", "dataset", "trials", "epochs", "sampler", "seed", "data_seed", "lr"):
        assert getattr(cfg, key) == stored[key], key
    assert list(cfg.objectives) == study.user_attrs["objectives"]


def test_metadata_json_matches_the_report(exported: Any, study: Any) -> None:
    meta = json.loads((exported.out / "hadanas.json").read_text())
    assert meta["input_shapes"] == [[1, 8, 8]] and meta["num_classes"] == 10
    assert meta["study"] == study.study_name and meta["trial"] == exported.trial
    assert meta["parity"] == exported.parity and meta["ok"] is True
    assert meta["test_accuracy"] == exported.test_accuracy


def _torch_only_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that sees the standard library and the packages
    of site-packages, but processes no .pth file (so the editable hadanas is not installed)
    and has hadanas and safetensors blocked outright."""
    purelib = sysconfig.get_paths()["purelib"]
    prelude = (
        "import sys, importlib.abc\n"
        f"sys.path[:0] = ['.']; sys.path.append({purelib!r})\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('hadanas', 'safetensors', 'spaces', 'search'):\n"
        "            raise ImportError(f'{name} is blocked in this check')\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    return subprocess.run([sys.executable, "-I", "-S", "-c", prelude + code], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_model_py_rebuilds_the_module_with_torch_only(exported: Any, data: Any, tmp_path: Path) -> None:
    """In a fresh interpreter without hadanas or safetensors: ``model.build`` loads the weights
    (strict) and gives the original's logits bit for bit; ``python model.py`` runs too."""
    work = tmp_path / "deploy"
    work.mkdir()
    for name in ("model.py", "weights.safetensors"):
        shutil.copy(exported.out / name, work / name)
    x = data.inputs["test"][0][:16]
    save_file({"x": x.contiguous()}, str(work / "inputs.safetensors"))
    proc = _torch_only_python(
        "import json, runpy\n"
        "try:\n    import hadanas\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('hadanas is importable')\n"
        "import model\n"
        "net = model.build('weights.safetensors')\n"
        "x = model.load_weights('inputs.safetensors')['x']\n"
        "import torch\n"
        "with torch.no_grad():\n    print(json.dumps(net(x).tolist()))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('hadanas', 'safetensors', 'optuna', 'pytorch_lightning', 'ray'))))\n"
        "sys.argv = ['model.py']\n"
        "runpy.run_path('model.py', run_name='__main__')\n",
        work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    logits_line, modules_line, script_line = proc.stdout.strip().splitlines()[-3:]
    assert json.loads(modules_line) == []
    got = torch.tensor(json.loads(logits_line), dtype=torch.float32)
    with torch.no_grad():
        ref = load(exported.out)(x)
    assert torch.equal(got, ref)
    n = count_params(load(exported.out))
    assert script_line == (f"HadaNet: {n} parameters, weights {work / 'weights.safetensors'}, "
                           "logits (2, 10)")


def test_model_py_imports_only_torch_and_the_standard_library(exported: Any) -> None:
    tree = ast.parse((exported.out / "model.py").read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    assert "torch" in roots
    assert roots - {"torch", "__future__"} <= set(sys.stdlib_module_names), roots


def test_load_refuses_what_is_not_an_export(exported: Any, tmp_path: Path, study: Any) -> None:
    with pytest.raises(StoreError, match="is not a directory"):
        load(tmp_path / "missing")
    broken = tmp_path / "broken"
    shutil.copytree(exported.out, broken)
    (broken / "hadanas.json").unlink()
    with pytest.raises(StoreError, match="hadanas.json is missing"):
        load(broken)
    # weights of another architecture: strict loading names the mismatch
    other = tmp_path / "other"
    shutil.copytree(exported.out, other)
    spec = ArchSpec.from_dict({"stages": [8, 16], "cell": [{"edges": [{"src": 0, "op": "skip"}]}]})
    (other / "spec.json").write_text(spec.to_json())
    with pytest.raises(StoreError, match="do not fit its spec.json"):
        load(other)


def test_export_errors_are_store_and_config_errors(study: Any, edited_store: dict,
                                                   front_trial: int, tmp_path: Path) -> None:
    from hadanas.search import load_study, open_storage

    edited = load_study(open_storage(edited_store["storage"], create=False), edited_store["study"])
    with pytest.raises(StoreError, match=r"is FAIL, not COMPLETE \(ValueError: injected"):
        export_trial(edited, edited_store["failed"], tmp_path / "a")
    with pytest.raises(StoreError, match="is infeasible"):
        export_trial(edited, edited_store["infeasible"], tmp_path / "b")
    with pytest.raises(StoreError, match=r"has no trial 99 \(trials are 0\.\.7\)"):
        export_trial(edited, 99, tmp_path / "c")
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        export_trial(study, front_trial, tmp_path / "d", "tflite")
    with pytest.raises(ConfigError, match="retrain_epochs must be a positive integer"):
        export_trial(study, front_trial, tmp_path / "e", retrain_epochs=0)
    assert not any((tmp_path / n).exists() for n in "abcde")  # nothing written on an error


def test_missing_onnx_names_what_to_install(study: Any, front_trial: int, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(ConfigError, match=r"needs onnxruntime, which is not installed: "
                                          r"pip install 'hadanas\[onnx\]'"):
        export_trial(study, front_trial, tmp_path / "x", ["onnx"])
    report = export_trial(study, front_trial, tmp_path / "y", ["code"])  # without onnx: fine
    assert report.ok and set(report.parity) == {"safetensors", "code"}


@pytest.mark.slow
def test_retrain_exports_retrained_weights_and_their_test_accuracy(
        study: Any, front_trial: int, tmp_path: Path, data: Any) -> None:
    report = export_trial(study, front_trial, tmp_path / "re", ["code"], retrain_epochs=1, seed=3)
    assert report.ok
    assert report.retrain is not None and report.retrain["epochs"] == 1
    assert report.retrain["splits"] == ["train", "val"] and report.retrain["seed"] == 3
    net = load(report.out)
    assert evaluate(net, data, "test") == report.test_accuracy
    stored = _stored_weights(study, front_trial, tmp_path)
    written = load_file(str(report.out / "weights.safetensors"))
    assert any(not torch.equal(written[k], stored[k]) for k in stored if stored[k].is_floating_point())
    card = (report.out / "MODEL_CARD.md").read_text()
    assert "retrained from scratch for 1 epoch(s) on train+val (seed 3" in card
    assert f"--retrain-epochs 1 --seed 3" in card
    meta = json.loads((report.out / "hadanas.json").read_text())
    assert meta["retrain"]["epochs"] == 1 and meta["test_accuracy"] == report.test_accuracy


def test_pareto_exports_every_front_member_with_an_index(study: Any, tmp_path: Path) -> None:
    from hadanas.search import front_trials

    result = export_pareto(study, tmp_path / "front", ["code"])
    front = sorted(t.number for t in front_trials(study))
    index = json.loads(result.index.read_text())
    assert [m["trial"] for m in index["members"]] == front == [r.trial for r in result.reports]
    assert index["study"] == study.study_name and index["objectives"] == ["accuracy", "flops"]
    for m in index["members"]:
        t = study.trials[m["trial"]]
        assert m["values"] == {"accuracy": t.values[0], "flops": t.values[1]}
        assert m["ok"] and m["dir"] == f"trial-{m['trial']}"
        member = result.out / m["dir"]
        assert (member / "MODEL_CARD.md").exists() and (member / "model.py").exists()
        assert m["test_accuracy"] == evaluate(load(member), load_dataset("digits", 0), "test")
    md = (result.out / "INDEX.md").read_text()
    assert all(f"[trial-{n}](trial-{n}/MODEL_CARD.md)" in md for n in front)
    rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(rows) == 2 + len(front)
    assert len({len(re.findall(r"(?<!\\)\|", ln)) for ln in rows}) == 1  # summaries' | escaped
    with pytest.raises(StoreError, match="is a Pareto export; load one of its members"):
        load(result.out)


def test_without_the_dataset_parity_uses_random_inputs_and_says_so(
        study: Any, front_trial: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hadanas.trainers
    from hadanas.exceptions import DatasetError

    def unavailable(*a: Any, **k: Any) -> Any:
        raise DatasetError("the files are on another machine")

    monkeypatch.setattr(hadanas.trainers, "load_dataset", unavailable)
    report = export_trial(study, front_trial, tmp_path / "nodata", ["code"])
    assert report.ok and report.test_accuracy is None
    assert report.inputs == ("random normal inputs (dataset 'digits' is not available here: the files "
                             "are on another machine) (batch 64)")
    card = (report.out / "MODEL_CARD.md").read_text()
    assert "test accuracy" not in card and "random normal inputs" in card
    with pytest.raises(ConfigError, match=f"cannot retrain trial {front_trial}: dataset 'digits' is not"):
        export_trial(study, front_trial, tmp_path / "nodata2", ["code"], retrain_epochs=1)
