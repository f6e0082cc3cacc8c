"""Property-based fuzzing of user dataset files: ``npz:PATH`` archives (wrong shapes, dtypes,
labels, names, non-finite values, files that are not archives) and ``folder:PATH`` image
folders (empty, single class, broken and odd-mode images, mixed sizes, stray files, options).

Each either loads as a usable bundle (at least 2 classes, every split non-empty, finite
float32 inputs of the stated shapes) or fails with one DatasetError/ConfigError line; the
CLI exits 2 and creates no store.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fuzz import fuzz_settings, one_line, tried  # noqa: E402

from hadanas.exceptions import HadanasError  # noqa: E402
from hadanas.trainers import clear_cache, load_dataset  # noqa: E402

DTYPES = ["float32", "float64", "float16", "int64", "int8", "uint8", "bool", "complex64", "<U3", "S2"]


def _outcome(name: str, subset: int | None = None) -> Any:
    clear_cache()
    try:
        b = load_dataset(name, 0, subset)
    except HadanasError as exc:
        return one_line(str(exc))
    assert b.num_classes >= 2
    shapes = [tuple(s) for s in b.input_shapes]
    for split in ("train", "val", "test"):
        xs = b.inputs[split]
        assert len(xs) == len(shapes) and all(len(x) > 0 for x in xs), split
        for x, s in zip(xs, shapes):
            t = np.asarray(x)
            assert tuple(t.shape[1:]) == s and t.dtype == np.float32 and np.isfinite(t).all(), (split, t.shape)
    return b


def _cli_refuses(dataset: str, tmp: str) -> None:
    """The same dataset through `hadanas search`: exit 2, one line, no store."""
    from hadanas.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["search", "--quiet", "--dataset", dataset, "--storage", f"sqlite:///{tmp}/s.db",
                         "--out", f"{tmp}/out", "--space", "conventional"])
        except SystemExit as exc:
            code = exc.code
    assert code == 2, err.getvalue()
    assert one_line(err.getvalue().strip()).startswith("hadanas: error: ")
    assert not Path(tmp, "s.db").exists()


# --- npz -----------------------------------------------------------------------------------


@st.composite
def arrays(draw: st.DrawFn, n: int | None = None, ndim: int | None = None) -> np.ndarray:
    dtype = draw(st.sampled_from(DTYPES))
    nd = draw(st.integers(0, 5)) if ndim is None else ndim
    shape = [draw(st.integers(0, 6)) for _ in range(nd)]
    if n is not None and nd:
        shape[0] = n
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    a = rng.normal(size=shape) * draw(st.sampled_from([1, 100, 1e30]))
    if np.dtype(dtype).kind in "US":
        return a.astype(str).astype(dtype)
    with np.errstate(all="ignore"):
        return a.astype(dtype)


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """A valid archive (images N x C x H x W, labels 0..K-1) with one thing wrong, or none."""
    k = draw(st.integers(2, 4))
    n = draw(st.integers(k * 5, 60))
    c, h, w = draw(st.sampled_from([1, 3])), draw(st.integers(2, 6)), draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    d = {"x": rng.normal(size=(n, c, h, w)).astype("float32"), "y": np.arange(n) % k}
    fault = draw(st.sampled_from([
        "none", "nan", "inf", "y-float", "y-frac", "y-neg", "y-str", "y-2d", "y-short", "one-class",
        "rare-class", "chan-last", "tiny", "vector", "vector-bad", "test", "test-bad", "extra", "y-gap",
        "y-huge", "x-int", "x-bool", "x-complex", "x-str", "empty", "labels-alias", "image-alias",
    ]))
    if fault == "nan":
        d["x"][draw(st.integers(0, n - 1)), 0, 0, 0] = np.nan
    elif fault == "inf":
        d["x"][0, 0, 0, 0] = np.inf
    elif fault == "y-float":
        d["y"] = d["y"].astype("float64")
    elif fault == "y-frac":
        d["y"] = d["y"] + 0.5
    elif fault == "y-neg":
        d["y"] = d["y"] - 1
    elif fault == "y-str":
        d["y"] = np.array([f"class-{v}" for v in d["y"]])
    elif fault == "y-2d":
        d["y"] = d["y"][:, None]
    elif fault == "y-short":
        d["y"] = d["y"][:-1]
    elif fault == "one-class":
        d["y"] = np.zeros(n, dtype=np.int64)
    elif fault == "rare-class":
        d["y"][0] = k  # a class with a single sample
    elif fault == "chan-last":
        d["x"] = np.ascontiguousarray(d["x"].transpose(0, 2, 3, 1)) if h > 4 else d["x"][:, :, :, :1]
    elif fault == "tiny":
        d["x"] = d["x"][:, :, :1, :]
    elif fault == "vector":
        d["vector"] = rng.normal(size=(n, draw(st.integers(1, 5)))).astype("float32")
    elif fault == "vector-bad":
        d["vector"] = draw(arrays(n=n))
    elif fault == "test":
        d["image_test"], d["y_test"] = d.pop("x")[: k * 3], np.arange(k * 3) % k
        d["image"] = rng.normal(size=(n, c, h, w)).astype("float32")
    elif fault == "test-bad":
        d["x_test"], d["y_test"] = draw(arrays()), draw(arrays())
    elif fault == "extra":
        d[draw(st.sampled_from(["X", "xs", "target", "image_val", "", "y_test"]))] = draw(arrays())
    elif fault == "y-gap":
        d["y"] = d["y"] * 7
    elif fault == "y-huge":
        d["y"] = d["y"].astype("int64") * (2**62)
    elif fault == "x-int":
        d["x"] = (d["x"] * 100).astype("int64")
    elif fault == "x-bool":
        d["x"] = d["x"] > 0
    elif fault == "x-complex":
        d["x"] = d["x"].astype("complex64")
    elif fault == "x-str":
        d["x"] = d["x"].astype(str)
    elif fault == "empty":
        d = {"x": d["x"][:0], "y": d["y"][:0]}
    elif fault == "labels-alias":
        d["labels"] = d.pop("y")
    elif fault == "image-alias":
        d["image"] = d.pop("x")
    return d


def _archives() -> st.SearchStrategy[dict[str, np.ndarray]]:
    names = st.sampled_from(["x", "image", "vector", "y", "labels", "x_test", "y_test", "image_test", "other"])
    return near_valid() | st.dictionaries(names, arrays(), max_size=4)


@fuzz_settings(150)
@given(_archives(), st.sampled_from([None, None, 30, 31, 10**6]))
def test_npz_archives(arrays_: dict[str, np.ndarray], subset: int | None) -> None:
    tried("dataset: npz archive")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp, "d.npz")
        np.savez(p, **arrays_)
        out = _outcome(f"npz:{p}", subset)
        if isinstance(out, str):
            assert f"npz:{p}" in out or "dataset" in out or "subset" in out, out


@fuzz_settings(60)
@given(st.binary(max_size=300) | st.sampled_from([b"", b"\x93NUMPY\x01\x00", b"PK\x03\x04junk"]),
       st.sampled_from(["raw", "npy", "zip-junk", "zip-truncated"]))
def test_files_that_are_not_npz_archives(data: bytes, kind: str) -> None:
    tried("dataset: not an npz archive")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp, "d.npz")
        if kind == "raw":
            p.write_bytes(data)
        elif kind == "npy":
            np.save(p.with_suffix(".npy"), np.frombuffer(data, dtype=np.uint8))
            p.with_suffix(".npy").rename(p)
        else:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                z.writestr("x.npy", data)
                z.writestr("y.npy", b"\x93NUMPY" + data)
            raw = buf.getvalue()
            p.write_bytes(raw if kind == "zip-junk" else raw[: max(1, len(raw) // 2)])
        out = _outcome(f"npz:{p}")
        assert isinstance(out, str) and f"npz:{p}" in out, out
        _cli_refuses(f"npz:{p}", tmp)


# --- image folders -------------------------------------------------------------------------

MODES = ["L", "RGB", "RGBA", "P", "1", "I;16", "I", "F", "LA", "CMYK"]


@st.composite
def folders(draw: st.DrawFn) -> list[tuple[str, str, Any]]:
    """Entries ``(class dir, file name, content)``; content is (mode, W, H) for an image or bytes."""
    entries: list[tuple[str, str, Any]] = []
    n_classes = draw(st.integers(0, 3))
    fixed = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    for c in range(n_classes):
        cname = draw(st.sampled_from(["cat", "dog", "é", ".hidden", "a b", "0"])) + str(c)
        for i in range(draw(st.integers(0, 6))):
            kind = draw(st.sampled_from(["img", "img", "img", "img-size", "empty", "junk", "txt", "nested"]))
            mode = draw(st.sampled_from(MODES))
            if kind in ("img", "nested"):
                name = ("sub/" if kind == "nested" else "") + f"{i}" + draw(st.sampled_from([".png", ".PNG", ".tiff", ".bmp"]))
                entries.append((cname, name, (mode, *fixed)))
            elif kind == "img-size":
                entries.append((cname, f"{i}.png", (mode, draw(st.integers(1, 9)), draw(st.integers(1, 9)))))
            elif kind == "empty":
                entries.append((cname, f"{i}.png", b""))
            elif kind == "junk":
                entries.append((cname, f"{i}.jpg", draw(st.binary(max_size=40))))
            else:
                entries.append((cname, f"{i}.txt", b"notes"))
    if draw(st.booleans()):
        entries.append(("", "stray.png", ("L", *fixed)))
    return entries


def _write_folder(root: Path, entries: list[tuple[str, str, Any]]) -> None:
    from PIL import Image

    root.mkdir()
    rng = np.random.default_rng(0)
    for cdir, name, content in entries:
        p = root / cdir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
            continue
        mode, w, h = content
        im = Image.fromarray(rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8), "RGB")
        im = im.convert(mode) if mode not in ("I;16",) else im.convert("I").convert("I;16")
        fmt = {".png": "PNG", ".tiff": "TIFF", ".bmp": "BMP"}[Path(name).suffix.lower()]
        try:
            im.save(p, format=fmt)
        except (OSError, ValueError, KeyError):  # that format cannot hold that mode: write it as TIFF
            im.save(p, format="TIFF")


@fuzz_settings(80)
@given(folders(), st.sampled_from(["", "", "?size=4x4", "?size=3", "?mode=RGB", "?mode=L&size=5x2",
                                   "?size=0x4", "?size=99999", "?mode=CMYK", "?colour=1", "?size=", "?&"]))
def test_image_folders(entries: list[tuple[str, str, Any]], options: str) -> None:
    pytest.importorskip("PIL")
    tried("dataset: image folder")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "imgs")
        _write_folder(root, entries)
        name = f"folder:{root}{options}"
        out = _outcome(name)
        if isinstance(out, str):
            assert f"folder:{root}" in out or "dataset" in out, out
            if len(entries) % 4 == 0:  # and through the CLI, now and then
                _cli_refuses(name, tmp)


def test_a_symlink_loop_in_an_image_folder(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    tried("dataset: image folder")
    root = tmp_path / "imgs"
    _write_folder(root, [("a", "0.png", ("L", 4, 4)), ("b", "0.png", ("L", 4, 4))])
    (root / "a" / "loop").symlink_to(root / "a", target_is_directory=True)
    out = _outcome(f"folder:{root}")
    assert isinstance(out, str) or out.num_classes == 2
