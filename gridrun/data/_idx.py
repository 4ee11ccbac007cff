"""Reading gzip-compressed IDX files (the MNIST / Fashion-MNIST format) into numpy.

An IDX file is a big-endian header (a magic number whose low bytes give the element
type and the number of dimensions, then one 32-bit size per dimension) followed by the
raw elements. Everything the header promises is checked against what the file holds:
a truncated or padded file is a ``DataError``, never a silently short dataset.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from gridrun.data._dataset import DataError

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "read_idx", "read_idx_pair"]

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, columns)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)
_KIND = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}
# deflate cannot compress better than about 1032:1; a header promising more is lying,
# and must not make us allocate its claimed size.
_MAX_RATIO = 1032


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX ``.gz`` file of unsigned bytes whose header must carry ``magic``.

    >>> read_idx(Path("mnist/t10k-labels-idx1-ubyte.gz"), LABELS_MAGIC).shape  # doctest: +SKIP
    (10000,)
    """
    try:
        with gzip.open(path, "rb") as f:
            dims = _read_header(f, path, magic)
            return _read_payload(f, path, dims)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{path}: cannot decompress ({e}); the file is corrupt or truncated, "
            f"delete it to download it again"
        ) from None


def read_idx_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image and label files as ``(N, H, W, 1)`` uint8 and ``(N,)`` int64."""
    x = read_idx(images, IMAGES_MAGIC)
    y = read_idx(labels, LABELS_MAGIC)
    if len(x) != len(y):
        raise DataError(
            f"{images} has {len(x)} images but {labels} has {len(y)} labels; "
            f"the two files do not belong together"
        )
    return x[..., np.newaxis], y.astype(np.int64)


def _read_header(f, path: Path, magic: int) -> tuple[int, ...]:
    got = int.from_bytes(_read_exact(f, 4, path, "magic number"), "big")
    if got != magic:
        raise DataError(
            f"{path}: IDX magic number {got}, expected {magic} ({_KIND[magic]}); "
            f"this is not an IDX {_KIND[magic]} file, check which file is at this path"
        )
    ndim = magic & 0xFF
    raw = _read_exact(f, 4 * ndim, path, "header")
    dims = tuple(int.from_bytes(raw[4 * i: 4 * i + 4], "big") for i in range(ndim))
    if 0 in dims:
        raise DataError(f"{path}: IDX header gives dimensions {dims}; none may be 0")
    limit = path.stat().st_size * _MAX_RATIO + 4096
    if math.prod(dims) > limit:
        raise DataError(
            f"{path}: IDX header promises {math.prod(dims)} bytes, more than a "
            f"{path.stat().st_size}-byte file can hold; the file is corrupt"
        )
    return dims


def _read_payload(f, path: Path, dims: tuple[int, ...]) -> np.ndarray:
    expected = math.prod(dims)
    out = np.empty(expected, dtype=np.uint8)
    # readinto fills the final array directly: no second 47 MB copy for MNIST's train set.
    view, filled = memoryview(out), 0
    while filled < expected:
        n = f.readinto(view[filled:])
        if not n:
            break
        filled += n
    if filled < expected:
        raise DataError(
            f"{path}: payload has {filled} bytes, header promises {expected} for shape {dims}; "
            f"the file is truncated, delete it to download it again"
        )
    if f.read(1):
        raise DataError(
            f"{path}: payload is longer than the {expected} bytes the header promises for "
            f"shape {dims}; the file is corrupt, delete it to download it again"
        )
    return out.reshape(dims)


def _read_exact(f, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DataError(f"{path}: file ends inside the IDX {what}; the file is truncated")
    return data
