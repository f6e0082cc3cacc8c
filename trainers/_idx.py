"""A small reader for the IDX format of (Fashion-)MNIST, plain or gzip-compressed."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from hadanas.exceptions import DatasetError

__all__ = ["read_idx"]

# IDX type byte -> big-endian numpy dtype (LeCun's MNIST page).
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file: 2 zero bytes, a type byte, a rank byte, rank big-endian uint32
    sizes, then the data in row-major order. ``.gz`` files are detected by their magic."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DatasetError(f"IDX file {path} is a damaged gzip file ({exc}).") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DatasetError(
            f"{path} is not an IDX file: it must start with 0x00 0x00, a type byte in "
            f"{sorted(hex(t) for t in _DTYPES)} and a rank byte."
        )
    dtype = np.dtype(_DTYPES[raw[2]])
    rank = raw[3]
    header = 4 + 4 * rank
    if len(raw) < header:
        raise DatasetError(f"IDX file {path} is truncated in its header.")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=rank, offset=4))
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if len(raw) - header != n * dtype.itemsize:
        raise DatasetError(
            f"IDX file {path} holds {len(raw) - header} data bytes, but its header {shape} "
            f"needs {n * dtype.itemsize}."
        )
    return np.frombuffer(raw, dtype, count=n, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
