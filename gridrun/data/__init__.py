"""Datasets: names only at import time; loaders are imported when a dataset is loaded.

    >>> from gridrun.data import load_dataset
    >>> ds = load_dataset("digits", val_fraction=0.1, split_seed=0)
    >>> ds
    Dataset(name='digits', train=1294, val=144, test=359, image_shape=(8, 8, 1), classes=10)

``mnist`` and ``fashion_mnist`` are read from the original IDX ``.gz`` files, and
``cifar10`` from ``cifar-10-python.tar.gz``, under ``data_dir()`` (``$GRIDRUN_DATA_DIR``
or ``~/.cache/gridrun``): ``mnist/``, ``fashion-mnist/``, ``cifar10/``. Missing files
are downloaded and checked against their published checksums.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

DATASET_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10")

__all__ = ["DATASET_NAMES", "Dataset", "DataError", "data_dir", "load_dataset"]

if TYPE_CHECKING:
    from gridrun.data._dataset import DataError, Dataset, data_dir
    from gridrun.data._load import load_dataset

# `import gridrun` imports this package (the spec checks dataset names), so numpy and
# the readers load only when something below is first used.
_LAZY = {
    "Dataset": "gridrun.data._dataset",
    "DataError": "gridrun.data._dataset",
    "data_dir": "gridrun.data._dataset",
    "load_dataset": "gridrun.data._load",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
