"""Reading CIFAR-10's python-pickle batches, from the release tarball or an extracted folder.

Each batch is a pickled dict (read with ``encoding="bytes"``, so keys are bytes) with
``b"data"``: uint8 ``(N, 3072)`` whose rows hold the R, G and B planes of a 32x32 image,
each plane row-major, and ``b"labels"``: N ints. ``batches.meta`` holds
``b"label_names"``. Pickles are unpickled with an allow-list of the few globals a numpy
array needs, because the extracted folder carries no checksum we can trust blindly and
a pickle may otherwise run arbitrary code.
"""

from __future__ import annotations

import codecs
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import IO, Sequence

import numpy as np

from gridrun.data._dataset import DataError

__all__ = ["TRAIN_BATCHES", "read_cifar_archive", "read_cifar_folder"]

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST, _META = "test_batch", "batches.meta"
_FOLDER = "cifar-10-batches-py"
_SIDE, _PIXELS = 32, 3 * 32 * 32

Raw = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]


def read_cifar_archive(path: Path, batches: Sequence[str] = TRAIN_BATCHES) -> Raw:
    """Read ``(x_train, y_train, x_test, y_test, classes)`` straight from the tarball.

    >>> x_train, y_train, x_test, y_test, classes = read_cifar_archive(
    ...     Path("cifar10/cifar-10-python.tar.gz"))                 # doctest: +SKIP
    >>> x_train.shape, classes[0]                                    # doctest: +SKIP
    ((50000, 32, 32, 3), 'airplane')
    """
    wanted = {f"{_FOLDER}/{m}": m for m in (*batches, _TEST, _META)}
    found: dict[str, object] = {}
    try:
        # Stream mode reads the 170 MB archive once; random access would re-decompress it
        # from the start for every member.
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                name = wanted.get(member.name.removeprefix("./"))
                if name is None or not member.isfile():
                    continue
                found[name] = _unpickle(tar.extractfile(member), f"{path}:{member.name}")
                if len(found) == len(wanted):
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read the archive ({e}); it is corrupt or truncated, "
                        f"delete it to download it again") from None
    missing = [m for m in wanted.values() if m not in found]
    if missing:
        raise DataError(f"{path} lacks {_FOLDER}/{missing[0]}; this is not the CIFAR-10 python "
                        f"archive, delete it to download it again")
    return _assemble(found, batches, str(path))


def read_cifar_folder(folder: Path, batches: Sequence[str] = TRAIN_BATCHES) -> Raw:
    """Read ``(x_train, y_train, x_test, y_test, classes)`` from an extracted batches folder."""
    found: dict[str, object] = {}
    for name in (*batches, _TEST, _META):
        path = Path(folder) / name
        try:
            with open(path, "rb") as f:
                found[name] = _unpickle(f, str(path))
        except FileNotFoundError:
            raise DataError(f"{path} not found; restore it, or delete {folder} and put "
                            f"cifar-10-python.tar.gz next to it") from None
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e}); check its permissions"
                            ) from None
    return _assemble(found, batches, str(folder))


def _assemble(found: dict, batches: Sequence[str], where: str) -> Raw:
    classes = _parse_meta(found[_META], f"{where}:{_META}")
    train = [_parse_batch(found[b], f"{where}:{b}", len(classes)) for b in batches]
    rows = np.concatenate([data for data, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    test_rows, y_test = _parse_batch(found[_TEST], f"{where}:{_TEST}", len(classes))
    return _to_images(rows), y_train, _to_images(test_rows), y_test, classes


def _to_images(rows: np.ndarray) -> np.ndarray:
    """(N, 3072) rows of R, G, B planes -> (N, 32, 32, 3) channels-last."""
    planes = rows.reshape(-1, 3, _SIDE, _SIDE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1))


def _parse_batch(obj, where: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    data, labels = _get(obj, b"data", where), _get(obj, b"labels", where)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == _PIXELS):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: b'data' must be uint8 of shape (N, {_PIXELS}), got {got}; "
                        f"the batch is corrupt")
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(data) or (len(y) and y.dtype.kind not in "iu"):
        raise DataError(f"{where}: b'labels' must be {len(data)} integers, one per image row, "
                        f"got {y.dtype} {y.shape}; the batch is corrupt")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{where}: labels span {y.min()}..{y.max()} but batches.meta names "
                        f"{num_classes} classes; the batch is corrupt")
    return data, y.astype(np.int64)


def _parse_meta(obj, where: str) -> tuple[str, ...]:
    names = _get(obj, b"label_names", where)
    if not isinstance(names, list) or not names or not all(
            isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{where}: b'label_names' must be a non-empty list of names, "
                        f"got {type(names).__name__}; the file is corrupt")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names)


def _get(obj, key: bytes, where: str):
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a pickled dict, got {type(obj).__name__}; "
                        f"the file is not a CIFAR-10 python batch")
    if key not in obj:
        keys = ", ".join(repr(k) for k in obj)
        raise DataError(f"{where}: lacks key {key!r} (has {keys}); "
                        f"the file is not a CIFAR-10 python batch")
    return obj[key]


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR batch contains: dicts, lists, bytes, ints, ndarrays."""

    def find_class(self, module: str, name: str):
        allowed = _allowed_globals().get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return allowed


def _allowed_globals() -> dict:
    # The running numpy's own reconstructor, whatever module path old pickles name it by
    # (CIFAR's were written by numpy 1.x as numpy.core.multiarray).
    reconstruct = np.empty(0).__reduce__()[0]
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes in pickle protocols 0-2 as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): codecs.encode,
    }


def _unpickle(f: IO[bytes] | None, where: str):
    if f is None:
        raise DataError(f"{where}: not a regular file in the archive")
    try:
        return _BatchUnpickler(f, encoding="bytes").load()
    except (OSError, zlib.error, tarfile.TarError):
        raise  # a damaged file or archive stream, reported by the caller with its path
    except Exception as e:  # noqa: BLE001 - malformed pickles raise almost any exception type
        raise DataError(f"{where}: not a readable CIFAR-10 pickle ({type(e).__name__}: {e}); "
                        f"the file is corrupt, delete it to download it again") from None
