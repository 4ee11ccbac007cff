"""The ``Dataset`` record every loader returns, ``DataError``, and where data lives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "RawData", "DataError", "data_dir"]


class DataError(ValueError):
    """Data that cannot be used. The message is one line: which file, what is wrong, what to do."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train / validation / test splits of one image-classification dataset.

    Images are ``uint8`` arrays of shape ``(N, H, W, C)`` (channels-last, unscaled);
    labels are ``int64`` arrays of shape ``(N,)`` indexing ``classes``. Frameworks
    convert and normalize on their side, so the same arrays feed torch and Keras.

    >>> ds = load_dataset("digits")                             # doctest: +SKIP
    >>> ds.image_shape, ds.num_classes, len(ds.x_train)          # doctest: +SKIP
    ((8, 8, 1), 10, 1294)
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        # Checked once here so that every loader (and a future image-folder loader)
        # hands the trainers the same, trustworthy layout.
        object.__setattr__(self, "classes", tuple(self.classes))
        shape = None
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            _check_split(self.name, split, x, y, len(self.classes))
            if shape is not None and x.shape[1:] != shape:
                raise DataError(
                    f"dataset {self.name!r}: {split} images are {x.shape[1:]}, "
                    f"train images are {shape}; all splits must share one image shape"
                )
            shape = x.shape[1:]

    @property
    def num_classes(self) -> int:
        """How many classes the labels index (``len(classes)``)."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of every image."""
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]

    def __repr__(self) -> str:
        # The default repr would print pixel arrays; sizes are what one wants to see.
        return (
            f"Dataset(name={self.name!r}, train={len(self.y_train)}, val={len(self.y_val)}, "
            f"test={len(self.y_test)}, image_shape={self.image_shape}, "
            f"classes={self.num_classes})"
        )


def _check_split(name: str, split: str, x, y, num_classes: int) -> None:
    where = f"dataset {name!r}, {split} split"
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{where}: images must be uint8 of shape (N, H, W, C), got {got}")
    if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
        got = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
        raise DataError(f"{where}: labels must be int64 of shape (N,), got {got}")
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} images but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(
            f"{where}: labels span {y.min()}..{y.max()}, but there are {num_classes} classes"
        )


def data_dir() -> Path:
    """The folder datasets are read from and downloaded to.

    ``$GRIDRUN_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/gridrun``, else
    ``~/.cache/gridrun``. Datasets live in sub-folders: ``mnist/``, ``fashion-mnist/``,
    ``cifar10/``. Nothing is created here until a file is downloaded.

    >>> os.environ["GRIDRUN_DATA_DIR"] = "/data/shared"         # doctest: +SKIP
    >>> data_dir()                                               # doctest: +SKIP
    PosixPath('/data/shared')
    """
    explicit = os.environ.get("GRIDRUN_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "gridrun"
    return Path.home() / ".cache" / "gridrun"


@dataclass(frozen=True, eq=False)
class RawData:
    """A dataset's official training and test sets, before gridrun's own splits."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
