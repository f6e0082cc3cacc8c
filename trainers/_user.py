"""User data: a folder of images (one sub-folder per class) or a ``.npz`` of arrays.

Both are checked (shapes, labels, finite values) with messages that name the problem and
the fix, split with the seeded stratified split and standardised with train-split
statistics (per channel for images, per feature for vectors).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from hadanas.exceptions import DatasetError
from hadanas.trainers._data import DataBundle, Loader, make_bundle, stratified_subset

__all__ = ["IMAGE_SUFFIXES", "folder_loader", "npz_loader", "parse_options"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def parse_options(text: str, allowed: tuple[str, ...], where: str) -> dict[str, str]:
    """``"size=32x32&mode=L"`` -> ``{"size": "32x32", "mode": "L"}``; unknown keys raise."""
    out: dict[str, str] = {}
    for part in filter(None, text.split("&")):
        key, eq, value = part.partition("=")
        if key not in allowed or not eq or not value:
            valid = ", ".join(f"{k}=..." for k in allowed) or "none"
            raise DatasetError(f"{where}: option '{part}' is not understood; valid options: {valid}.")
        out[key] = value
    return out


def _parse_size(text: str, where: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    try:
        hw = (int(h), int(w or h))
    except ValueError:
        hw = (0, 0)
    if min(hw) < 1 or max(hw) > 4096:
        raise DatasetError(f"{where}: size must be HxW or N with 1..4096 pixels, e.g. size=32x32, "
                           f"but got '{text}'.")
    return hw


def _labels(y: np.ndarray, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels as int64 ``0..K-1`` plus class names; integers 0..K-1 keep their values."""
    if y.dtype.kind in "iu" and y.size and y.min() >= 0 and set(np.unique(y)) == set(range(int(y.max()) + 1)):
        return y.astype(np.int64), tuple(str(i) for i in range(int(y.max()) + 1))
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DatasetError(f"{where}: labels must be integers or strings, but 'y' holds "
                               "non-integral floats; store class indices as int64.")
        return _labels(y.astype(np.int64), where)
    if y.dtype.kind not in "iuUSb":
        raise DatasetError(f"{where}: labels must be integers or strings, but 'y' has dtype {y.dtype}.")
    names, idx = np.unique(y, return_inverse=True)
    return idx.astype(np.int64), tuple(str(n) for n in names)


def _check_finite(a: np.ndarray, name: str, where: str) -> None:
    if a.dtype.kind not in "iufb":
        raise DatasetError(f"{where}: array '{name}' must be numeric, but has dtype {a.dtype}.")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            raise DatasetError(f"{where}: array '{name}' has {int(bad.sum())} non-finite values "
                               f"(NaN or inf), the first in sample {first}; clean or drop them.")


def _image_array(a: np.ndarray, name: str, where: str) -> np.ndarray:
    if a.ndim == 3:
        a = a[:, None]  # (N, H, W) -> (N, 1, H, W)
    if a.ndim != 4:
        raise DatasetError(
            f"{where}: array '{name}' must be images (N, C, H, W) or (N, H, W), but has shape "
            f"{a.shape}; a vector-only dataset is not supported: reshape it to (N, 1, H, W)."
        )
    if a.shape[1] > 4 and a.shape[3] in (1, 3, 4):
        raise DatasetError(
            f"{where}: array '{name}' of shape {a.shape} looks channels-last (N, H, W, C); "
            "store it channels-first: np.transpose(x, (0, 3, 1, 2))."
        )
    if min(a.shape[2:]) < 2:
        raise DatasetError(f"{where}: array '{name}' images must be at least 2x2, but are {a.shape[2:]}.")
    return a


def _pool_and_bundle(name: str, xs: list[np.ndarray], y: np.ndarray, seed: int,
                     subset: int | None, modalities: tuple[str, ...], classes: tuple[str, ...],
                     test: tuple[list[np.ndarray], np.ndarray] | None = None) -> DataBundle:
    if len(np.unique(y)) < 2:
        raise DatasetError(f"dataset '{name}' has a single class; a classifier needs at least 2.")
    if subset:
        keep = stratified_subset(y, subset, seed)
        xs, y = [x[keep] for x in xs], y[keep]
    return make_bundle(name, [x.astype(np.float32) for x in xs], y, seed, modalities,
                       test=None if test is None else ([t.astype(np.float32) for t in test[0]], test[1]),
                       standardise=[True] * len(xs), classes=classes)


# --- .npz ----------------------------------------------------------------------------------

_NPZ_KEYS = {"image": ("image", "x"), "vector": ("vector",), "y": ("y", "labels")}


def _npz_pick(arrays: dict[str, np.ndarray], role: str, suffix: str) -> tuple[str, np.ndarray] | None:
    for k in _NPZ_KEYS[role]:
        if k + suffix in arrays:
            return k + suffix, arrays[k + suffix]
    return None


def npz_loader(path: Path, options: str) -> Loader:
    """Loader of ``path``: arrays ``image`` (alias ``x``), optional ``vector``, and ``y``
    (alias ``labels``); optionally a fixed test set as ``image_test``[, ``vector_test``], ``y_test``."""
    where = f"npz:{path}"
    parse_options(options, (), where)

    def load(seed: int, subset: int | None) -> DataBundle:
        import zipfile

        try:
            z = np.load(path, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):  # a single .npy array
                raise DatasetError(f"{where}: holds one array, not an .npz archive of named arrays; "
                                   "save it with np.savez(path, image=..., y=...).")
            with z:
                arrays = {k: z[k] for k in z.files}
        except ValueError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            if "pickle" in first:
                raise DatasetError(f"{where}: cannot read it without pickle ({first}); save plain "
                                   "numeric arrays with np.savez(path, image=..., y=...).") from None
            raise DatasetError(f"{where}: not a readable .npz file ({first}).") from None
        except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise DatasetError(f"{where}: not a readable .npz file ({first}).") from None
        known = {k + s for ks in _NPZ_KEYS.values() for k in ks for s in ("", "_test")}
        extra = sorted(set(arrays) - known)
        if extra:
            raise DatasetError(f"{where}: unexpected arrays {extra}; valid names: image (or x), "
                               "vector, y (or labels), and the same with _test for a fixed test set.")

        def part(suffix: str) -> tuple[list[np.ndarray], np.ndarray, tuple[str, ...]] | None:
            img, vec, lab = (_npz_pick(arrays, r, suffix) for r in ("image", "vector", "y"))
            if img is None and lab is None and vec is None:
                return None
            if img is None or lab is None:
                raise DatasetError(f"{where}: needs an image array 'image{suffix}' (or 'x{suffix}') "
                                   f"and labels 'y{suffix}', but has {sorted(arrays)}.")
            xs = [_image_array(img[1], img[0], where)]
            names = [img[0]]
            if vec is not None:
                if vec[1].ndim != 2:
                    raise DatasetError(f"{where}: array '{vec[0]}' must be vectors (N, D), but has "
                                       f"shape {vec[1].shape}.")
                xs.append(vec[1])
                names.append(vec[0])
            y = lab[1]
            if y.ndim != 1:
                raise DatasetError(f"{where}: labels '{lab[0]}' must be 1-D (N,), but have shape {y.shape}.")
            for x, n in zip(xs, names):
                if len(x) != len(y):
                    raise DatasetError(f"{where}: '{n}' has {len(x)} samples but '{lab[0]}' has "
                                       f"{len(y)} labels; they must match.")
                _check_finite(x, n, where)
            return xs, y, tuple(names)

        pool, test = part(""), part("_test")
        if pool is None:
            raise DatasetError(f"{where}: needs arrays 'image' and 'y', but has {sorted(arrays)}.")
        xs, y_raw, names = pool
        modalities = ("image", "vector")[: len(xs)]
        if test is not None:
            txs, ty_raw, tnames = test
            if len(txs) != len(xs) or any(a.shape[1:] != b.shape[1:] for a, b in zip(xs, txs)):
                raise DatasetError(
                    f"{where}: test arrays {[t.shape for t in txs]} must match the pool's "
                    f"{[x.shape for x in xs]} apart from the number of samples."
                )
            labels, classes = _labels(np.concatenate([y_raw, ty_raw]), where)
            y, ty = labels[: len(y_raw)], labels[len(y_raw):]
            return _pool_and_bundle(path.name, xs, y, seed, subset, modalities, classes, (txs, ty))
        y, classes = _labels(y_raw, where)
        return _pool_and_bundle(path.name, xs, y, seed, subset, modalities, classes)

    return load


# --- image folders -------------------------------------------------------------------------


def folder_loader(path: Path, options: str) -> Loader:
    """Loader of a folder with one sub-folder of images per class.

    Images must share one size unless ``?size=HxW`` (or ``?size=N``) resizes them all
    (bilinear); they load as grey (1 channel) unless one is colour, or ``?mode=L|RGB``.
    """
    where = f"folder:{path}"
    opts = parse_options(options, ("size", "mode"), where)
    size = _parse_size(opts["size"], where) if "size" in opts else None
    mode = opts.get("mode")
    if mode not in (None, "L", "RGB"):
        raise DatasetError(f"{where}: mode must be L (grey) or RGB, but got '{mode}'.")

    def load(seed: int, subset: int | None) -> DataBundle:
        try:
            from PIL import Image
        except ImportError:
            raise DatasetError(f"{where}: reading image folders needs Pillow: pip install pillow") from None
        if not path.is_dir():
            raise DatasetError(f"{where}: not a folder.")
        class_dirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
        if len(class_dirs) < 2:
            raise DatasetError(f"{where}: needs one sub-folder per class (at least 2), e.g. "
                               f"{path}/cat/1.png and {path}/dog/1.png, but has {len(class_dirs)}.")
        files: list[Path] = []
        labels: list[int] = []
        for c, d in enumerate(class_dirs):
            found = sorted(f for f in d.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise DatasetError(f"{where}: class folder '{d.name}' has no images "
                                   f"({', '.join(IMAGE_SUFFIXES)}).")
            files += found
            labels += [c] * len(found)
        y = np.asarray(labels, dtype=np.int64)
        if subset:
            keep = stratified_subset(y, subset, seed)
            files, y = [files[i] for i in keep], y[keep]
        images = []
        for f in files:
            try:
                with Image.open(f) as im:
                    im.load()
                    images.append(im.copy())
            except OSError as exc:
                raise DatasetError(f"{where}: cannot read image {f} ({exc}).") from None
        use = mode or ("L" if all(im.mode in _GRAY_MODES for im in images) else "RGB")
        if size is None:
            sizes = Counter(im.size for im in images)  # PIL sizes are (W, H)
            if len(sizes) > 1:
                listed = ", ".join(f"{h}x{w} ({n} images)" for (w, h), n in sizes.most_common(3))
                (w, h), _ = sizes.most_common(1)[0]
                raise DatasetError(f"{where}: images differ in size: {listed}; resize them all with "
                                   f"'{where}?size={h}x{w}' (HxW).")
        arrays = []
        for im in images:
            im = im.convert(use)
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.float32) / 255.0
            arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))  # (C, H, W)
        x = np.stack(arrays)  # (N, C, H, W)
        return _pool_and_bundle(path.name, [x], y, seed, None, ("image",),
                                tuple(d.name for d in class_dirs))

    return load
